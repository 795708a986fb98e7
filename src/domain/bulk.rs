//! Bulk invite files: parsing a CSV upload into rows and checking what each row can be checked for
//! without the database. A file that is not a usable CSV is refused whole; a bad row is reported with
//! its line number and why, and the others go on.

use super::{EmailAddress, ProductRole, text};

/// Most rows one file may hold (the daily invite cap applies on top).
pub const MAX_ROWS: usize = 5000;
/// Longest personal message, as for `inviteUsers`.
pub const MAX_MESSAGE_CHARS: usize = 1000;

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
}
