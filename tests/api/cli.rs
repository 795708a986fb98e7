//! The command line: each command's `--help` lists the flags that command reads and no other, and a
//! configuration flag given to a command that does not read it is refused, not ignored.

use std::collections::BTreeSet;
use std::process::Command;

/// The long flags a `--help` output lists.
fn flags_in_help(args: &[&str]) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_guestpass"))
        .args(args)
        .arg("--help")
        .env_clear()
        .output()
        .expect("run guestpass");
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")))
        .map(|w| w.trim_end_matches(',').to_string())
        .collect()
}

fn set(flags: &[&str]) -> BTreeSet<String> {
    flags.iter().map(|f| f.to_string()).collect()
}

/// What a command that only touches the database reads, besides its own flags.
const DATABASE: &[&str] = &[
    "--database-url",
    "--secret",
    "--secret-previous",
    "--log",
    "--help",
];

#[test]
fn each_command_lists_only_the_flags_it_reads() {
    let with = |own: &[&str]| {
        let mut s = set(DATABASE);
        s.extend(own.iter().map(|f| f.to_string()));
        s
    };
    assert_eq!(flags_in_help(&[]), set(&["--help", "--version"]));
    assert_eq!(flags_in_help(&["export-schema"]), set(&["--help"]));
    assert_eq!(flags_in_help(&["migrate"]), with(&[]));
    assert_eq!(flags_in_help(&["check-access"]), with(&["--repair"]));
    assert_eq!(flags_in_help(&["rotate-secrets"]), with(&[]));
    assert_eq!(
        flags_in_help(&["seed"]),
        with(&[
            "--users",
            "--guests",
            "--sites",
            "--spaces",
            "--groups",
            "--invites",
            "--audit",
            "--admins",
            "--external",
            "--due"
        ])
    );
    assert_eq!(
        flags_in_help(&["reverify-now"]),
        with(&["--public-url", "--reverify-lead-minutes"])
    );
    assert_eq!(
        flags_in_help(&["bootstrap"]),
        with(&[
            "--org",
            "--site",
            "--admin-email",
            "--user-limit",
            "--verified-domain"
        ])
    );
    // `serve` reads everything: the server's flags are there.
    let serve = flags_in_help(&["serve"]);
    for f in [
        "--bind",
        "--smtp-url",
        "--app-url",
        "--public-url",
        "--auth-cache-ms",
        "--secret-previous",
        "--demo",
        "--api-only",
    ] {
        assert!(serve.contains(f), "serve --help lacks {f}: {serve:?}");
    }
}

#[test]
fn a_flag_a_command_does_not_read_is_refused_and_the_environment_is_not() {
    let out = Command::new(env!("CARGO_BIN_EXE_guestpass"))
        .args(["export-schema", "--bind", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("`guestpass export-schema` does not read --bind"),
        "{out:?}"
    );
    // A deployment's shared environment is fine for every command.
    let out = Command::new(env!("CARGO_BIN_EXE_guestpass"))
        .arg("export-schema")
        .env("GUESTPASS_BIND", "127.0.0.1:1")
        .env("GUESTPASS_SMTP_URL", "smtp://localhost:25")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("type Query"));
}
