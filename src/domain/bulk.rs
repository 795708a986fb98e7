//! Bulk invite files: parsing a CSV upload into rows and checking what each row can be checked for
//! without the database. A file that is not a usable CSV is refused whole; a bad row is reported with
//! its line number and why, and the others go on.

use super::domains::{self, DomainMode};
use super::{EmailAddress, ProductRole, text};
use chrono::{DateTime, Utc};

/// Most rows one file may hold (the daily invite cap applies on top).
pub const MAX_ROWS: usize = 5000;
/// The personal message of a row is the one `inviteUsers` takes.
pub use super::invites::MAX_MESSAGE_CHARS;

/// The columns, by their normalized header names. Only `email` is required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    Email,
    Role,
    SpaceKey,
    GroupNames,
    PersonalMessage,
}

impl Column {
    fn from_header(h: &str) -> Option<Self> {
        let h: String = h
            .trim()
            .trim_start_matches('\u{feff}')
            .to_lowercase()
            .chars()
            .map(|c| if c == '_' || c == '-' { ' ' } else { c })
            .collect();
        match h.split_whitespace().collect::<Vec<_>>().join(" ").as_str() {
            "email" | "email address" | "e mail" | "e mail address" => Some(Self::Email),
            "role" => Some(Self::Role),
            "space key" | "space" => Some(Self::SpaceKey),
            "group names" | "groups" => Some(Self::GroupNames),
            "personal message" | "message" => Some(Self::PersonalMessage),
            _ => None,
        }
    }
}

/// One row as written, after the checks that need nothing but the row itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The line in the file (the header is line 1), as a spreadsheet numbers it.
    pub line: i32,
    /// The address as written (trimmed), kept for the report even when it does not parse.
    pub email: String,
    pub role: Option<ProductRole>,
    pub space_key: Option<String>,
    pub group_names: Vec<String>,
    pub personal_message: Option<String>,
    /// Why the row cannot be tried, if it cannot: a stable code and a message.
    pub problem: Option<(&'static str, String)>,
}

/// Why a whole file is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the file is empty")]
    Empty,
    #[error("the file has no `email` column")]
    NoEmailColumn,
    #[error(
        "unknown column `{0}` (expected: email, role, space key, group names, personal message)"
    )]
    UnknownColumn(String),
    #[error("the column `{0}` appears twice")]
    DuplicateColumn(String),
    #[error("at most {MAX_ROWS} rows per file")]
    TooManyRows,
    #[error("line {line}: {reason}")]
    Unreadable { line: u64, reason: String },
}

fn parse_role(s: &str) -> Result<Option<ProductRole>, String> {
    let norm: String = s
        .trim()
        .to_uppercase()
        .chars()
        .map(|c| if c == ' ' || c == '-' { '_' } else { c })
        .collect();
    if norm.is_empty() {
        return Ok(None);
    }
    ProductRole::from_code(&norm).map(Some).ok_or_else(|| {
        format!(
            "role `{}` is not one of GUEST, USER, PRODUCT_ADMIN",
            s.trim()
        )
    })
}

/// Reads a CSV file (UTF-8, comma separated, a header row first) into rows, each checked on its own:
/// the address parses, the role is known, the text is clean, and no address appears twice.
pub fn parse(bytes: &[u8]) -> Result<Vec<Row>, FileError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    let headers = reader.headers().map_err(|e| unreadable(&e))?.clone();
    if headers.iter().all(|h| h.trim().is_empty()) {
        return Err(FileError::Empty);
    }
    let mut columns = Vec::with_capacity(headers.len());
    for h in headers.iter() {
        let c = Column::from_header(h).ok_or_else(|| FileError::UnknownColumn(h.to_string()))?;
        if columns.contains(&c) {
            return Err(FileError::DuplicateColumn(h.trim().to_string()));
        }
        columns.push(c);
    }
    if !columns.contains(&Column::Email) {
        return Err(FileError::NoEmailColumn);
    }
    let mut rows = Vec::new();
    let mut seen = std::collections::HashMap::<String, i32>::new();
    for record in reader.records() {
        let record = record.map_err(|e| unreadable(&e))?;
        if record.iter().all(|c| c.trim().is_empty()) {
            continue; // blank lines, as spreadsheets leave them at the end
        }
        if rows.len() == MAX_ROWS {
            return Err(FileError::TooManyRows);
        }
        let line = record.position().map_or(0, |p| p.line()) as i32;
        let cell = |c: Column| {
            columns
                .iter()
                .position(|x| *x == c)
                .and_then(|i| record.get(i))
                .unwrap_or("")
        };
        let email = cell(Column::Email).trim().to_string();
        let mut problem: Option<(&'static str, String)> = None;
        let mut fail = |code: &'static str, msg: String| {
            if problem.is_none() {
                problem = Some((code, msg));
            }
        };
        match EmailAddress::parse(&email) {
            Ok(a) => {
                if let Some(first) = seen.insert(a.normalized().to_string(), line) {
                    seen.insert(a.normalized().to_string(), first);
                    fail("INVALID_INPUT", format!("the same address as line {first}"));
                }
            }
            Err(e) => fail("INVALID_EMAIL", e),
        }
        let role = parse_role(cell(Column::Role)).unwrap_or_else(|e| {
            fail("INVALID_INPUT", e);
            None
        });
        let space = cell(Column::SpaceKey);
        let space_key = match text::single_line(space, 100) {
            _ if space.trim().is_empty() => None,
            Ok(k) => Some(k),
            Err(e) => {
                fail("INVALID_INPUT", format!("space key: {e}"));
                None
            }
        };
        let mut group_names = Vec::new();
        for name in cell(Column::GroupNames).split(';') {
            match text::single_line(name, 100) {
                _ if name.trim().is_empty() => {}
                Ok(n) => {
                    if !group_names.contains(&n) {
                        group_names.push(n);
                    }
                }
                Err(e) => fail("INVALID_INPUT", format!("group name: {e}")),
            }
        }
        let personal_message = text::multi_line(cell(Column::PersonalMessage), MAX_MESSAGE_CHARS)
            .unwrap_or_else(|e| {
                fail("INVALID_INPUT", format!("personal message: {e}"));
                None
            });
        if role.is_none() && group_names.is_empty() {
            fail(
                "INVALID_INPUT",
                "give a role, or groups that hold a role on this site".into(),
            );
        }
        if space_key.is_some() && role.is_some_and(ProductRole::is_paid) {
            fail("INVALID_INPUT", "only guests are invited to a space".into());
        }
        rows.push(Row {
            line,
            email,
            role,
            space_key,
            group_names,
            personal_message,
            problem,
        });
    }
    if rows.is_empty() {
        return Err(FileError::Empty);
    }
    Ok(rows)
}

fn unreadable(e: &csv::Error) -> FileError {
    let line = e.position().map_or(1, |p| p.line());
    let reason = match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "is not UTF-8 text".to_string(),
        _ => "is not valid CSV".to_string(),
    };
    FileError::Unreadable { line, reason }
}

/// What the database holds about the names an upload's rows give, read once for the whole file when
/// it is stored, so each row is checked against the same facts.
#[derive(Clone, Debug)]
pub struct Known {
    /// The keys, among those the rows name, of spaces that exist on the site.
    pub spaces: Vec<String>,
    /// The organization's groups among those the rows name (normalized name), each with whether the
    /// uploader may grant it (the rule of `addGroupMembers`).
    pub groups: Vec<(String, bool)>,
    /// The organization's guest domain rules.
    pub domain_mode: DomainMode,
    pub domain_patterns: Vec<String>,
}

/// Why a row cannot be tried, once the file is stored: its own problem ([`parse`]'s), else the first
/// of a space that does not exist, a group that does not exist, a group the uploader may not invite
/// into (`FORBIDDEN`, as `inviteUsers` answers), or a guest address the domain rules refuse. A row
/// that passes waits for the job, which checks again under the site's lock (the facts may change).
pub fn upload_problem(row: &Row, known: &Known) -> Option<(&'static str, String)> {
    if let Some(p) = &row.problem {
        return Some(p.clone());
    }
    if let Some(key) = row.space_key.as_deref()
        && !known.spaces.iter().any(|k| k == key)
    {
        return Some((
            "NOT_FOUND",
            format!("no space with the key `{key}` on this site"),
        ));
    }
    let named = |n: &String, refused: bool| {
        let n = n.to_lowercase();
        known
            .groups
            .iter()
            .any(|(k, may)| *k == n && (!refused || !may))
    };
    if let Some(name) = row.group_names.iter().find(|n| !named(n, false)) {
        return Some(("NOT_FOUND", format!("no group named `{name}`")));
    }
    if let Some(name) = row.group_names.iter().find(|n| named(n, true)) {
        return Some((
            "FORBIDDEN",
            format!(
                "the group `{name}` holds a role on a site you do not administer, so you cannot invite into it"
            ),
        ));
    }
    // A row without a problem has an address that parses: its domain is the parsed one, as for an
    // invite by address.
    if row.role == Some(ProductRole::Guest)
        && let Ok(address) = EmailAddress::parse(&row.email)
        && !domains::allowed(known.domain_mode, &known.domain_patterns, address.domain())
    {
        return Some((
            "DOMAIN_NOT_ALLOWED",
            "the organization's domain rules do not allow this address as a guest".into(),
        ));
    }
    None
}

/// The rolling window of the daily invite cap (`invites_per_admin_per_day`): an invite counts against
/// its admin's cap while it is younger than this.
pub const CAP_WINDOW: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// How a file's waiting rows fit its uploader's daily invite cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    /// Rows that may be invited now.
    pub now: i64,
    /// When the rest may go on (the file is `PAUSED` until then): the moment enough of the window has
    /// freed for the next row, counting the `now` rows as made at once. `None` when every waiting
    /// row fits now.
    pub resumes_at: Option<DateTime<Utc>>,
}

/// How many of `waiting` rows may be invited `now` under a cap of `cap` invites per [`CAP_WINDOW`],
/// given when the uploader's earlier invites were made (`made`, any order; those older than the
/// window no longer count), and when the rest may resume. Room appears as the oldest invites of the
/// window age out, so the rest resume when the invite whose ageing out makes room for one more row
/// is a window old. A cap of 0 or less never frees: the file then looks again a window later (an
/// operator may have raised the cap).
pub fn pace(cap: i64, made: &[DateTime<Utc>], waiting: i64, now: DateTime<Utc>) -> Pace {
    let since = now - CAP_WINDOW;
    let mut window: Vec<DateTime<Utc>> = made.iter().copied().filter(|t| *t > since).collect();
    window.sort_unstable();
    let waiting = waiting.max(0);
    let go = (cap - window.len() as i64).clamp(0, waiting);
    if go == waiting {
        return Pace {
            now: go,
            resumes_at: None,
        };
    }
    // The `go` rows invited now join the window as its newest; the next row needs `over` of the
    // window's invites, the oldest first, to have aged out.
    window.extend(std::iter::repeat_n(now, go as usize));
    let over = window.len() as i64 + 1 - cap;
    let resumes_at = match usize::try_from(over - 1) {
        Ok(i) if cap > 0 => window.get(i).map_or(now + CAP_WINDOW, |t| *t + CAP_WINDOW),
        _ => now + CAP_WINDOW,
    };
    Pace {
        now: go,
        resumes_at: Some(resumes_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_with_lines_and_every_column() {
        let rows = parse(
            b"Email,Role,Space key,Group names,Personal message\n\
              a@x.example,guest,DOCS,,\"Hello,\nwelcome\"\n\
              b@x.example,USER,,Writers; Readers ;,\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].role, Some(ProductRole::Guest));
        assert_eq!(rows[0].space_key.as_deref(), Some("DOCS"));
        assert_eq!(rows[0].personal_message.as_deref(), Some("Hello,\nwelcome"));
        assert_eq!(rows[1].line, 4, "the quoted line break counts as a line");
        assert_eq!(rows[1].group_names, vec!["Writers", "Readers"]);
        assert!(rows.iter().all(|r| r.problem.is_none()));
    }

    #[test]
    fn bad_rows_say_why_and_the_rest_go_on() {
        let rows = parse(
            b"email,role,space key\n\
              not-an-address,GUEST,\n\
              ok@x.example,OWNER,\n\
              OK@x.example,GUEST,\n\
              paid@x.example,USER,DOCS\n\
              norole@x.example,,\n\
              fine@x.example,GUEST,DOCS\n",
        )
        .unwrap();
        let codes: Vec<_> = rows
            .iter()
            .map(|r| r.problem.as_ref().map(|p| p.0))
            .collect();
        assert_eq!(
            codes,
            vec![
                Some("INVALID_EMAIL"),
                Some("INVALID_INPUT"),
                Some("INVALID_INPUT"),
                Some("INVALID_INPUT"),
                Some("INVALID_INPUT"),
                None
            ]
        );
        assert!(rows[2].problem.as_ref().unwrap().1.contains("line 3"));
    }

    #[test]
    fn unusable_files_are_refused_whole() {
        assert_eq!(parse(b""), Err(FileError::Empty));
        assert_eq!(parse(b"email\n\n"), Err(FileError::Empty));
        assert_eq!(parse(b"role\nGUEST\n"), Err(FileError::NoEmailColumn));
        assert!(matches!(
            parse(b"email,colour\na@x.example,red\n"),
            Err(FileError::UnknownColumn(_))
        ));
        assert!(matches!(
            parse(b"email,e-mail\n"),
            Err(FileError::DuplicateColumn(_))
        ));
        assert!(matches!(
            parse(b"email,Email\n"),
            Err(FileError::DuplicateColumn(_))
        ));
        assert!(matches!(
            parse(b"email,role\n\xff\xfe@x.example,GUEST\n"),
            Err(FileError::Unreadable { line: 2, .. })
        ));
        let mut big = b"email,role\n".to_vec();
        for i in 0..=MAX_ROWS {
            big.extend_from_slice(format!("u{i}@x.example,GUEST\n").as_bytes());
        }
        assert_eq!(parse(&big), Err(FileError::TooManyRows));
    }

    #[test]
    fn a_byte_order_mark_and_spreadsheet_headers_are_understood() {
        let rows =
            parse("\u{feff}E-mail address,GROUPS\r\na@x.example,Team\r\n".as_bytes()).unwrap();
        assert_eq!(rows[0].email, "a@x.example");
        assert_eq!(rows[0].group_names, vec!["Team"]);
    }

    fn known() -> Known {
        Known {
            spaces: vec!["DOCS".into()],
            groups: vec![("writers".into(), true), ("board".into(), false)],
            domain_mode: DomainMode::Block,
            domain_patterns: vec!["blocked.example".into()],
        }
    }

    fn row(csv_line: &str) -> Row {
        let file = format!("email,role,space key,group names\n{csv_line}\n");
        parse(file.as_bytes()).unwrap().remove(0)
    }

    #[test]
    fn a_stored_row_names_what_exists_and_what_the_uploader_may_grant() {
        let code = |line: &str| upload_problem(&row(line), &known()).map(|p| p.0);
        assert_eq!(code("a@x.example,GUEST,DOCS,"), None);
        assert_eq!(
            code("a@x.example,,,Writers"),
            None,
            "names match letter case aside"
        );
        assert_eq!(code("a@x.example,GUEST,WIKI,"), Some("NOT_FOUND"));
        assert_eq!(code("a@x.example,,,Writers;Nobody"), Some("NOT_FOUND"));
        assert_eq!(code("a@x.example,,,Writers;Board"), Some("FORBIDDEN"));
        assert_eq!(
            code("a@blocked.example,GUEST,,"),
            Some("DOMAIN_NOT_ALLOWED")
        );
        assert_eq!(
            code("a@blocked.example,USER,,"),
            None,
            "the domain rules are about guests"
        );
    }

    #[test]
    fn the_first_problem_of_a_stored_row_is_the_one_reported() {
        // The row's own problem first, then spaces, then groups, then the domain rules.
        let p = upload_problem(&row("not-an-address,GUEST,WIKI,Nobody"), &known()).unwrap();
        assert_eq!(p.0, "INVALID_EMAIL");
        let p = upload_problem(&row("a@blocked.example,GUEST,WIKI,Board"), &known()).unwrap();
        assert_eq!(
            p,
            (
                "NOT_FOUND",
                "no space with the key `WIKI` on this site".into()
            )
        );
        let p = upload_problem(&row("a@blocked.example,GUEST,,Nobody;Board"), &known()).unwrap();
        assert_eq!(p, ("NOT_FOUND", "no group named `Nobody`".into()));
        let p = upload_problem(&row("a@blocked.example,GUEST,,Board"), &known()).unwrap();
        assert_eq!(p.0, "FORBIDDEN");
        assert!(p.1.contains("`Board`"), "{}", p.1);
    }

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + chrono::TimeDelta::minutes(minutes)
    }

    #[test]
    fn a_file_within_the_cap_goes_whole() {
        assert_eq!(
            pace(500, &[], 100, at(0)),
            Pace {
                now: 100,
                resumes_at: None
            }
        );
        // Exactly up to the cap, with earlier invites counted.
        let made: Vec<_> = (0..400).map(at).collect();
        assert_eq!(pace(500, &made, 100, at(400)).now, 100);
        assert_eq!(pace(500, &made, 100, at(400)).resumes_at, None);
        assert_eq!(pace(500, &[], 0, at(0)).now, 0, "nothing waits");
        assert_eq!(pace(500, &[], 0, at(0)).resumes_at, None);
    }

    #[test]
    fn past_the_cap_the_rest_resume_when_the_oldest_invite_ages_out() {
        // A fresh file of 600 under a cap of 500: 500 now; the next row when these are a day old.
        assert_eq!(
            pace(500, &[], 600, at(0)),
            Pace {
                now: 500,
                resumes_at: Some(at(0) + CAP_WINDOW)
            }
        );
        // 500 made over the last 500 minutes: nothing now; the oldest frees the next row.
        let made: Vec<_> = (0..500).rev().map(at).collect();
        assert_eq!(
            pace(500, &made, 100, at(500)),
            Pace {
                now: 0,
                resumes_at: Some(at(0) + CAP_WINDOW)
            }
        );
        // 300 made: 200 go now, and the first of the 300 frees the next.
        let made: Vec<_> = (10..310).map(at).collect();
        assert_eq!(
            pace(500, &made, 250, at(400)),
            Pace {
                now: 200,
                resumes_at: Some(at(10) + CAP_WINDOW)
            }
        );
    }

    #[test]
    fn invites_older_than_the_window_do_not_count() {
        let now = at(0) + CAP_WINDOW;
        // Made exactly a window ago: aged out (the cap counts invites younger than the window).
        let made = vec![at(0), at(1), at(2)];
        let p = pace(2, &made, 5, now);
        assert_eq!(p.now, 0, "two of the window's invites are still young");
        assert_eq!(p.resumes_at, Some(at(1) + CAP_WINDOW));
        // At that moment the one made at minute 1 ages out too: one row goes, and the next waits for
        // the one made at minute 2.
        let p = pace(2, &made, 5, at(1) + CAP_WINDOW);
        assert_eq!(p.now, 1);
        assert_eq!(p.resumes_at, Some(at(2) + CAP_WINDOW));
    }

    #[test]
    fn a_lowered_cap_waits_for_enough_invites_to_age_out() {
        // 5 invites in the window, a cap of 2: four must age out before the next row fits.
        let made: Vec<_> = [40, 10, 30, 20, 50].into_iter().map(at).collect();
        assert_eq!(
            pace(2, &made, 1, at(60)),
            Pace {
                now: 0,
                resumes_at: Some(at(40) + CAP_WINDOW)
            }
        );
    }

    #[test]
    fn a_cap_of_zero_looks_again_a_window_later() {
        assert_eq!(
            pace(0, &[], 3, at(0)),
            Pace {
                now: 0,
                resumes_at: Some(at(0) + CAP_WINDOW)
            }
        );
        assert_eq!(
            pace(-1, &[at(0)], 3, at(5)).resumes_at,
            Some(at(5) + CAP_WINDOW)
        );
    }

    #[test]
    fn the_resume_moment_is_always_later_and_then_lets_a_row_go() {
        // Whatever the history, resuming at `resumes_at` lets at least one row go (counting the rows
        // invited now at `now`).
        for cap in 1..6 {
            for n in 0..8 {
                let made: Vec<_> = (0..n).map(|i| at(i * 7)).collect();
                let now = at(60);
                let p = pace(cap, &made, 10, now);
                let Some(r) = p.resumes_at else { continue };
                assert!(r > now);
                let mut later = made.clone();
                later.extend(std::iter::repeat_n(now, p.now as usize));
                assert!(
                    pace(cap, &later, 10 - p.now, r).now >= 1,
                    "cap {cap}, {n} made"
                );
                let just_before = r - chrono::TimeDelta::microseconds(1);
                assert_eq!(pace(cap, &later, 10 - p.now, just_before).now, 0);
            }
        }
    }
}
