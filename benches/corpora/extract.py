"""Writes the vendored corpora from the unpacked packages (called by ./refresh)."""
import glob
import json
import os
import re
import sys

import yaml

out, enrich, monperrus, isbot, intoli, matomo, uap = sys.argv[1:]
# Per device class at most this many Matomo fixtures, taken evenly: keeps the corpus small.
MATOMO_PER_CLASS = 800
MATOMO_CLASSES = {
    "desktop": "desktop",
    "smartphone": "mobile",
    "phablet": "mobile",
    "feature phone": "mobile",
    "tablet": "tablet",
    "tv": "tv",
    "console": "console",
}


def clean(ua):
    """One line each: agents with a line break or tab cannot be sent as a header anyway."""
    return ua if isinstance(ua, str) and ua and not any(c in ua for c in "\t\r\n") else None


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def write(name, rows, header):
    seen, lines = set(), []
    for row in rows:
        if row[0] is None or row[0] in seen:
            continue
        seen.add(row[0])
        lines.append("\t".join("" if v is None else str(v) for v in row))
    with open(os.path.join(out, name), "w", encoding="utf-8") as f:
        f.write("#" + "\t".join(header) + "\n")
        f.write("\n".join(lines) + "\n")
    print(f"{name}: {len(lines)}")


def version(package_dir):
    with open(os.path.join(package_dir, "package.json"), encoding="utf-8") as f:
        return json.load(f)["version"]


crawlers = json.load(open(os.path.join(monperrus, "crawler-user-agents.json"), encoding="utf-8"))
with open(os.path.join(enrich, "crawler-patterns.txt"), "w", encoding="utf-8") as f:
    f.write("\n".join(c["pattern"] for c in crawlers) + "\n")
write("bots-monperrus.tsv", ((clean(i),) for c in crawlers for i in c.get("instances", [])), ["user_agent"])


# isbot alternatives left out: substrings that name real browsers, plug-ins or phones in the
# browser corpora (and, for `^[^ ]{50,}$`, app agents without spaces), and that the other rules
# cover for the bots they were meant for.
ISBOT_DROPPED = {
    "catch", "chromeframe", "browsex", "offbyone", "discovery", "server", "download", "proxy",
    "^[^ ]{50,}$", r"\b\w+/1\.0;",
}


def isbot_patterns(index_js):
    """isbot's pattern, split into its alternatives. The few with look-around (which RE2 and
    Rust's regex do not have) are left out; the collector's own word rules cover them."""
    with open(index_js, encoding="utf-8") as f:
        full = json.loads(re.search(r'var fullPattern = ("(?:[^"\\\\]|\\\\.)*");', f.read()).group(1))
    parts, depth, cur, i = [], 0, "", 0
    while i < len(full):
        c = full[i]
        if c == "\\":
            cur, i = cur + full[i:i + 2], i + 2
            continue
        if c == "[":
            j = i + 1
            while full[j] != "]" or full[j - 1] == "\\":
                j += 1
            cur, i = cur + full[i:j + 1], j + 1
            continue
        depth += {"(": 1, ")": -1}.get(c, 0)
        if c == "|" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    parts.append(cur)
    # JavaScript reads `[\d-.]` as three characters; RE2 and Rust want the `-` escaped.
    parts = [re.sub(r"(\\[dws])-", r"\1\\-", p) for p in parts]
    return [p for p in parts if not re.search(r"\(\?<?[=!]", p) and p not in ISBOT_DROPPED]


with open(os.path.join(enrich, "isbot-patterns.txt"), "w", encoding="utf-8") as f:
    f.write("\n".join(isbot_patterns(os.path.join(isbot, "index.js"))) + "\n")

bots = load_yaml(os.path.join(matomo, "bots.yml"))
write("bots-matomo.tsv", ((clean(b["user_agent"]), b["bot"].get("category") or "") for b in bots),
      ["user_agent", "category"])

devices = load_yaml(os.path.join(uap, "tests", "test_device.yaml"))["test_cases"]
write("bots-uap.tsv", ((clean(d["user_agent_string"]),) for d in devices if d["family"] == "Spider"),
      ["user_agent"])

agents = json.load(open(os.path.join(intoli, "dist", "user-agents.json"), encoding="utf-8"))
write("browsers-intoli.tsv", ((clean(a["userAgent"]), a["deviceCategory"]) for a in agents),
      ["user_agent", "device"])

by_class = {}
for path in sorted(glob.glob(os.path.join(matomo, "*.yml"))):
    if os.path.basename(path) == "bots.yml":
        continue
    for fixture in load_yaml(path) or []:
        client, device = fixture.get("client") or {}, fixture.get("device") or {}
        cls = MATOMO_CLASSES.get(device.get("type"))
        ua = clean(fixture.get("user_agent"))
        if cls and ua and client.get("type") == "browser" and not fixture.get("headers"):
            os_ = fixture.get("os") or {}
            by_class.setdefault(cls, []).append(
                (ua, cls, os_.get("name", ""), os_.get("version", ""), client.get("name", ""),
                 client.get("version", "")))
rows = []
for cls, fixtures in sorted(by_class.items()):
    step = max(1, len(fixtures) // MATOMO_PER_CLASS)
    rows.extend(fixtures[::step][:MATOMO_PER_CLASS])
write("browsers-matomo.tsv", rows,
      ["user_agent", "device", "os", "os_version", "browser", "browser_version"])

oses = load_yaml(os.path.join(uap, "tests", "test_os.yaml"))["test_cases"]
write("os-uap.tsv", ((clean(o["user_agent_string"]), o["family"], o.get("major") or "") for o in oses),
      ["user_agent", "os", "major"])

regexes = load_yaml(os.path.join(uap, "regexes.yaml"))
with open(os.path.join(enrich, "uap-regexes.json"), "w", encoding="utf-8") as f:
    json.dump(regexes, f, separators=(",", ":"))

with open(os.path.join(out, "VERSIONS"), "w", encoding="utf-8") as f:
    f.write(f"npm crawler-user-agents {version(monperrus)}\n")
    f.write(f"npm isbot {version(isbot)}\n")
    f.write(f"npm user-agents {version(intoli)}\n")
    f.write(f"pypi device-detector {os.path.basename(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(matomo))))).split('-')[-1]}\n")
    f.write(f"uap-core {version(uap)} (crates.io ua-parser {os.path.basename(os.path.dirname(uap)).split('-')[-1]})\n")
