//! CSV that spreadsheets read as data, never as formulas or as extra cells.
//!
//! Two dangers, both from text that visitors choose (paths, referrer hosts, UTM values):
//!
//! - **Cells split where the writer did not mean to.** RFC 4180 quotes only `,`, `"`, CR and LF,
//!   but spreadsheets in many locales split on `;`, and some trim or split on whitespace. So a
//!   cell is quoted when it holds any of `,` `;` `"` or any whitespace (`"` doubled inside).
//! - **Formula injection.** A cell starting with `=`, `+`, `-`, `@`, tab, CR or LF is run as a
//!   formula by some spreadsheet; so is one that starts with such a character after whitespace
//!   (including NBSP), zero-width characters, or as a full-width or small-form look-alike
//!   (`＝`, `﹦`, `－`, `−`, …), since spreadsheets fold those. Such a cell gets a leading `'`
//!   (the OWASP advice), which shows it as text.
//!
//! Written by hand rather than with the `csv` crate: that crate's "necessary" quoting is exactly
//! RFC 4180's, which leaves `;` and whitespace bare, and quoting every cell would turn numbers
//! into text for some readers. Lines end with CRLF as RFC 4180 says.

/// Characters a spreadsheet starts a formula with, with their full-width and small-form
/// look-alikes (and the Unicode minus sign).
const FORMULA_STARTS: &[char] = &[
    '=', '+', '-', '@', '\t', '\r', '\n', '＝', '＋', '－', '＠', '﹦', '﹢', '﹣', '﹫', '−',
];

/// Characters that show nothing and are skipped before the first visible one.
fn invisible(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}' | '\u{FEFF}')
}

/// A text cell a spreadsheet will not run: see the module comment.
pub fn neutralise(cell: &str) -> String {
    let starts_with_control = cell.starts_with(['\t', '\r', '\n']);
    let first_visible = cell.chars().find(|c| !invisible(*c));
    if starts_with_control || first_visible.is_some_and(|c| FORMULA_STARTS.contains(&c)) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

fn needs_quotes(cell: &str) -> bool {
    cell.chars()
        .any(|c| matches!(c, ',' | ';' | '"') || invisible(c))
}

/// A CSV document being written.
#[derive(Default)]
pub struct Csv {
    out: Vec<u8>,
}

impl Csv {
    /// Appends one record; cells are written as given (neutralise text cells first).
    pub fn record<S: AsRef<str>>(&mut self, cells: impl IntoIterator<Item = S>) {
        for (i, cell) in cells.into_iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            let cell = cell.as_ref();
            if needs_quotes(cell) {
                self.out.push(b'"');
                self.out
                    .extend_from_slice(cell.replace('"', "\"\"").as_bytes());
                self.out.push(b'"');
            } else {
                self.out.extend_from_slice(cell.as_bytes());
            }
        }
        self.out.extend_from_slice(b"\r\n");
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(cells: &[&str]) -> String {
        let mut csv = Csv::default();
        csv.record(cells.iter().map(|c| neutralise(c)));
        String::from_utf8(csv.into_bytes()).unwrap()
    }

    #[test]
    fn formula_cells_are_defused_also_behind_invisible_characters_and_look_alikes() {
        for bad in [
            "=1+1",
            "+1",
            "-1",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "\nx",
            " =1",
            "\u{A0}=1",
            "\u{200B}=1",
            "\u{FEFF}+1",
            " \u{A0}\u{200D}@x",
            "＝1+1",
            "＋1",
            "－1",
            "＠x",
            "﹦1",
            "−1",
            "\u{3000}=1",
        ] {
            assert_eq!(neutralise(bad), format!("'{bad}"), "{bad:?}");
        }
        for fine in ["/pricing", "", "a=b", "news.example", "(none)", " ", "x-1"] {
            assert_eq!(neutralise(fine), fine);
        }
    }

    #[test]
    fn cells_with_separators_quotes_or_whitespace_are_quoted() {
        assert_eq!(line(&["a", "b"]), "a,b\r\n");
        assert_eq!(
            line(&["x;=cmd|' /C calc'!A0"]),
            "\"x;=cmd|' /C calc'!A0\"\r\n"
        );
        assert_eq!(
            line(&["a,b", "say \"hi\""]),
            "\"a,b\",\"say \"\"hi\"\"\"\r\n"
        );
        assert_eq!(line(&["a b"]), "\"a b\"\r\n");
        assert_eq!(line(&["a\u{A0}b"]), "\"a\u{A0}b\"\r\n");
        assert_eq!(line(&["=x;y"]), "\"'=x;y\"\r\n");
        assert_eq!(line(&["a\nb"]), "\"a\nb\"\r\n");
        assert_eq!(line(&["12", "0.5000", ""]), "12,0.5000,\r\n");
    }
}
