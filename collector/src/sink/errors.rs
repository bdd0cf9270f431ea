//! Telling insert failures apart: worth retrying, fixed by applying the schema again, or
//! permanent (the batch itself is refused and retrying it would block every batch behind it).
//!
//! ClickHouse names the cause with an error code (`Code: 60. DB::Exception: ...`), which the
//! `clickhouse` crate passes on in the response text; the codes are stable across versions.
//! Anything not known to be permanent is retried: holding a batch back for a while is better
//! than quarantining one that a healthy server would take.

/// What to do about a failed insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Network, timeout, overload, a server restarting: try again after a backoff.
    Retry,
    /// The database or a table is gone (ClickHouse restarted empty, a table dropped or renamed):
    /// apply the schema again, then retry.
    SchemaGone,
    /// ClickHouse refuses this batch as it is (a column gone or changed, a constraint broken):
    /// retrying will not help.
    Permanent,
}

/// `UNKNOWN_TABLE`, `UNKNOWN_DATABASE`.
const SCHEMA_GONE: [u32; 2] = [60, 81];

/// Codes that say the rows, or the table's shape, are wrong.
const PERMANENT: [u32; 26] = [
    6,   // CANNOT_PARSE_TEXT
    8,   // THERE_IS_NO_COLUMN
    10,  // NOT_FOUND_COLUMN_IN_BLOCK
    16,  // NO_SUCH_COLUMN_IN_TABLE
    20,  // NUMBER_OF_COLUMNS_DOESNT_MATCH
    26,  // CANNOT_PARSE_QUOTED_STRING
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    32,  // ATTEMPT_TO_READ_AFTER_EOF
    33,  // CANNOT_READ_ALL_DATA
    38,  // CANNOT_PARSE_DATE
    41,  // CANNOT_PARSE_DATETIME
    43,  // ILLEGAL_TYPE_OF_ARGUMENT
    44,  // ILLEGAL_COLUMN
    47,  // UNKNOWN_IDENTIFIER
    53,  // TYPE_MISMATCH
    62,  // SYNTAX_ERROR
    69,  // ARGUMENT_OUT_OF_BOUND
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    117, // INCORRECT_DATA
    128, // TOO_LARGE_ARRAY_SIZE
    131, // TOO_LARGE_STRING_SIZE
    349, // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    395, // FUNCTION_THROW_IF_VALUE_IS_NON_ZERO
    469, // VIOLATED_CONSTRAINT
    1,   // UNSUPPORTED_METHOD
];

/// `SETTING_CONSTRAINT_VIOLATION`, `UNKNOWN_SETTING`.
const SETTING_REFUSED: [u32; 2] = [452, 115];

/// Whether ClickHouse refused a setting the query asked for (a profile that fixes it, a server
/// that does not know it), whatever its rows: asked again, it is refused again.
pub fn setting_refused(error: &clickhouse::error::Error) -> bool {
    match error {
        clickhouse::error::Error::BadResponse(text) => {
            server_code(text).is_some_and(|code| SETTING_REFUSED.contains(&code))
        }
        _ => false,
    }
}

/// The ClickHouse error code in a server's error text, if any.
pub fn server_code(text: &str) -> Option<u32> {
    let rest = &text[text.find("Code: ")? + 6..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

pub fn classify(error: &clickhouse::error::Error) -> Class {
    use clickhouse::error::Error;
    match error {
        Error::BadResponse(text) => match server_code(text) {
            Some(code) if SCHEMA_GONE.contains(&code) => Class::SchemaGone,
            Some(code) if PERMANENT.contains(&code) => Class::Permanent,
            _ => Class::Retry,
        },
        // The client compared the row type with the table and they differ: a column was
        // dropped, renamed or changed.
        Error::SchemaMismatch(_) => Class::Permanent,
        // A spooled row that is not a row of the table (one of another version's layout).
        Error::Other(inner) if inner.is::<footfall_store::native::NotARow>() => Class::Permanent,
        _ => Class::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickhouse::error::Error;

    fn server(text: &str) -> Error {
        Error::BadResponse(text.into())
    }

    #[test]
    fn codes_decide_the_class() {
        for (text, class) in [
            (
                "Code: 60. DB::Exception: Unknown table expression identifier 'x.events'. (UNKNOWN_TABLE)",
                Class::SchemaGone,
            ),
            (
                "Code: 81. DB::Exception: Database x does not exist. (UNKNOWN_DATABASE)",
                Class::SchemaGone,
            ),
            (
                "Code: 469. DB::Exception: Constraint `c` for table x.events is violated. (VIOLATED_CONSTRAINT)",
                Class::Permanent,
            ),
            (
                "Code: 16. DB::Exception: No such column path in table x.events. (NO_SUCH_COLUMN_IN_TABLE)",
                Class::Permanent,
            ),
            (
                "Code: 252. DB::Exception: Too many parts. (TOO_MANY_PARTS)",
                Class::Retry,
            ),
            (
                "Code: 241. DB::Exception: Memory limit exceeded. (MEMORY_LIMIT_EXCEEDED)",
                Class::Retry,
            ),
            ("502 Bad Gateway", Class::Retry),
        ] {
            assert_eq!(classify(&server(text)), class, "{text}");
        }
        assert_eq!(classify(&Error::TimedOut), Class::Retry);
        assert_eq!(
            classify(&Error::SchemaMismatch("column gone".into())),
            Class::Permanent
        );
        let not_a_row = footfall_store::native::Block::new().push(b"x").unwrap_err();
        assert_eq!(
            classify(&Error::Other(Box::new(not_a_row))),
            Class::Permanent
        );
        let unreadable = std::io::Error::other("the spool could not be read");
        assert_eq!(classify(&Error::Other(Box::new(unreadable))), Class::Retry);
    }

    #[test]
    fn a_refused_setting_is_told_from_refused_rows() {
        let constrained = server(
            "Code: 452. DB::Exception: Setting os_thread_priority should not be changed. (SETTING_CONSTRAINT_VIOLATION)",
        );
        let unknown = server(
            "Code: 115. DB::Exception: Unknown setting 'os_thread_priority'. (UNKNOWN_SETTING)",
        );
        assert!(setting_refused(&constrained));
        assert!(setting_refused(&unknown));
        assert!(!setting_refused(&server(
            "Code: 16. DB::Exception: No such column path in table x.events. (NO_SUCH_COLUMN_IN_TABLE)"
        )));
        assert!(!setting_refused(&Error::TimedOut));
        // Retried (at the full priority that asks for nothing), never quarantined.
        assert_eq!(classify(&constrained), Class::Retry);
    }

    #[test]
    fn the_code_is_read_from_the_text() {
        assert_eq!(
            server_code("bad response: Code: 469. DB::Exception"),
            Some(469)
        );
        assert_eq!(server_code("Code: x"), None);
        assert_eq!(server_code("no code"), None);
    }
}
