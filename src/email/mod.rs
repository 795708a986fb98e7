//! Emails: templates (files under `templates/email`, compiled into the binary) rendered into multipart
//! messages, and the transport that sends them (pooled async SMTP, or `.eml` files in an outbox).

use askama::Template;
use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart, header};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;
use std::time::Duration;

pub use crate::domain::email::SendError;

/// How emails write a moment, e.g. "4 December 2026 at 09:30 UTC".
pub const DATETIME_FORMAT: &str = "%-d %B %Y at %H:%M UTC";

/// `t` as emails write it ([`DATETIME_FORMAT`]).
pub fn format_datetime(t: DateTime<Utc>) -> String {
    t.format(DATETIME_FORMAT).to_string()
}

/// What an invite email says. Every field is plain text; the HTML template escapes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InviteEmail {
    pub inviter: String,
    pub organization: String,
    pub site: String,
    pub space: Option<String>,
    pub role: &'static str,
    pub message: Option<String>,
    pub link: String,
    /// e.g. "4 December 2026 at 09:30 UTC"
    pub expires: String,
}

/// A two-step sign-in code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeEmail {
    /// What the code is for, completing "Your code to ...": "finish signing in to" or "verify your
    /// email address for".
    pub purpose: &'static str,
    pub name: String,
    pub organization: String,
    pub code: String,
    pub minutes: i64,
}

impl CodeEmail {
    /// The purpose of a code that finishes a sign-in.
    pub const SIGN_IN: &str = "finish signing in to";
    /// The purpose of a code that confirms an email address (re-verification).
    pub const VERIFY_ADDRESS: &str = "verify your email address for";
}

/// A password reset link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResetEmail {
    pub name: String,
    pub organization: String,
    pub link: String,
    pub minutes: i64,
}

/// A re-verification link (the scheduler's reminder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReverifyEmail {
    pub name: String,
    pub organization: String,
    pub link: String,
    /// When the current period ends, e.g. "4 December 2026 at 09:30 UTC".
    pub until: String,
}

/// A message about a guest's access: a reminder before it ends (to the guest or their sponsor), or a
/// guest asking their sponsor for more time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeEmail {
    /// `true`: a guest's request for more time; `false`: a reminder that access ends soon.
    pub request: bool,
    /// The reminder goes to the guest themselves (otherwise to their sponsor).
    pub to_guest: bool,
    pub recipient: String,
    pub guest: String,
    pub guest_email: String,
    pub site: String,
    pub organization: String,
    /// e.g. "4 December 2026 at 09:30 UTC"
    pub ends: Option<String>,
    pub message: Option<String>,
}

/// One email, of any kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Email {
    Invite(InviteEmail),
    Code(CodeEmail),
    Reset(ResetEmail),
    Reverify(ReverifyEmail),
    Notice(NoticeEmail),
}

impl Email {
    pub fn render(&self) -> Result<Rendered, askama::Error> {
        match self {
            Self::Invite(e) => e.render(),
            Self::Code(e) => e.render(),
            Self::Reset(e) => e.render(),
            Self::Reverify(e) => e.render(),
            Self::Notice(e) => e.render(),
        }
    }
}

/// Subject, text and HTML bodies.
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Each email kind has three template files (`<name>_subject.txt`, `<name>.txt`, `<name>.html`) that
/// read the same struct through `e`; this generates their wrappers and the `render` method.
macro_rules! email_templates {
    ($content:ident, $subject:literal, $text:literal, $html:literal) => {
        const _: () = {
            #[derive(Template)]
            #[template(path = $subject)]
            struct Subject<'a> {
                e: &'a $content,
            }
            #[derive(Template)]
            #[template(path = $text)]
            struct Text<'a> {
                e: &'a $content,
            }
            #[derive(Template)]
            #[template(path = $html)]
            struct Html<'a> {
                e: &'a $content,
            }
            impl $content {
                pub fn render(&self) -> Result<Rendered, askama::Error> {
                    let subject = Subject { e: self }.render()?;
                    Ok(Rendered {
                        // Subjects are one line: anything else is flattened.
                        subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
                        text: Text { e: self }.render()?,
                        html: Html { e: self }.render()?,
                    })
                }
            }
        };
    };
}

email_templates!(
    InviteEmail,
    "email/invite_subject.txt",
    "email/invite.txt",
    "email/invite.html"
);
email_templates!(
    CodeEmail,
    "email/code_subject.txt",
    "email/code.txt",
    "email/code.html"
);
email_templates!(
    ReverifyEmail,
    "email/reverify_subject.txt",
    "email/reverify.txt",
    "email/reverify.html"
);
email_templates!(
    NoticeEmail,
    "email/notice_subject.txt",
    "email/notice.txt",
    "email/notice.html"
);
email_templates!(
    ResetEmail,
    "email/reset_subject.txt",
    "email/reset.txt",
    "email/reset.html"
);

/// Builds the MIME message. lettre encodes every header value, so no field can inject a header.
pub fn build_message(
    from: &Mailbox,
    to: &str,
    message_id: &str,
    r: Rendered,
) -> Result<Message, String> {
    let to: Mailbox = to.parse().map_err(|e| format!("bad recipient: {e}"))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(r.subject)
        .message_id(Some(message_id.to_string()))
        .header(header::MIME_VERSION_1_0)
        .multipart(MultiPart::alternative_plain_html(r.text, r.html))
        .map_err(|e| format!("cannot build message: {e}"))
}

pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

impl Mailer {
    /// SMTP when a URL is configured (`smtp://` with optional `?tls=required` for STARTTLS, `smtps://`
    /// for implicit TLS, credentials in the URL), otherwise the outbox directory.
    pub fn from_config(
        smtp_url: Option<&str>,
        outbox: PathBuf,
        concurrency: usize,
    ) -> Result<Self, String> {
        match smtp_url {
            Some(url) => {
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| format!("GUESTPASS_SMTP_URL is not usable: {e}"))?;
                Ok(Self::Smtp(
                    builder
                        .timeout(Some(Duration::from_secs(30)))
                        .pool_config(PoolConfig::new().max_size(concurrency.max(1) as u32))
                        .build(),
                ))
            }
            None => {
                std::fs::create_dir_all(&outbox).map_err(|e| {
                    format!("cannot create outbox directory {}: {e}", outbox.display())
                })?;
                Ok(Self::Outbox(outbox))
            }
        }
    }

    pub async fn send(&self, file_stem: &str, message: Message) -> Result<(), SendError> {
        match self {
            Self::Outbox(dir) => {
                let path = dir.join(format!("{file_stem}.eml"));
                tokio::fs::write(&path, message.formatted())
                    .await
                    .map_err(|e| {
                        SendError::Configuration(format!("cannot write {}: {e}", path.display()))
                    })?;
                tracing::info!(file = %path.display(), "email written to outbox");
                Ok(())
            }
            Self::Smtp(t) => t.send(message).await.map(|_| ()).map_err(classify),
        }
    }
}

fn classify(e: lettre::transport::smtp::Error) -> SendError {
    let text = e.to_string();
    // TLS failures and client-side refusals (e.g. no usable authentication mechanism, credentials
    // over an unencrypted connection) are about our configuration, not the recipient.
    if e.is_tls() || e.is_client() {
        return SendError::Configuration(text);
    }
    if let Some(code) = e.status() {
        let c = code.to_string();
        // 530/534/535/538: authentication required or refused: a problem of ours, not the recipient's.
        if ["530", "534", "535", "538"].contains(&c.as_str()) {
            return SendError::Configuration(text);
        }
        if e.is_permanent() {
            return SendError::Permanent(text);
        }
        return SendError::Transient(text);
    }
    SendError::Transient(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> InviteEmail {
        InviteEmail {
            inviter: "Ada <Admin>".into(),
            organization: "Acme".into(),
            site: "Docs".into(),
            space: Some("Partners & Co".into()),
            role: "a guest",
            message: Some("Hi!\nBcc: evil@example.com\n<script>alert(1)</script>".into()),
            link: "https://gp.example/invite/gpi_x".into(),
            expires: "4 December 2026 at 09:30 UTC".into(),
        }
    }

    #[test]
    fn html_escapes_and_keeps_line_breaks() {
        let r = sample().render().unwrap();
        assert!(r.html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
        assert!(!r.html.contains("<script>"));
        assert!(r.html.contains("Hi!<br>"));
        assert!(r.html.contains("Ada &#60;Admin&#62;"));
        assert!(r.html.contains("Partners &#38; Co"));
        assert!(r.text.contains("> Bcc: evil@example.com"));
        assert!(r.text.contains("https://gp.example/invite/gpi_x"));
        assert_eq!(r.subject, "Ada <Admin> invited you to Docs (Acme)");
    }

    #[test]
    fn message_headers_cannot_be_injected() {
        let mut e = sample();
        e.inviter = "Eve\r\nBcc: victim@example.com".into();
        let r = e.render().unwrap();
        let from: Mailbox = "Guestpass <gp@example.com>".parse().unwrap();
        let m = build_message(&from, "guest@example.com", "<m1@gp.example>", r).unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        let head = raw.split("\r\n\r\n").next().unwrap();
        assert!(!head.lines().any(|l| l.starts_with("Bcc:")), "{head}");
        assert!(head.contains("Message-ID: <m1@gp.example>"));
    }

    /// Every email kind, rendered from fixed inputs, as a reviewer reads it: one snapshot file each
    /// (under `src/email/snapshots`), so a change to a template shows up as a diff to review.
    mod snapshots {
        use super::super::*;
        use chrono::TimeZone;

        fn shown(e: Email) -> String {
            let r = e.render().unwrap();
            format!(
                "Subject: {}\n\n----- text -----\n{}\n----- html -----\n{}\n",
                r.subject, r.text, r.html
            )
        }

        fn moment() -> String {
            format_datetime(Utc.with_ymd_and_hms(2026, 12, 4, 9, 30, 0).unwrap())
        }

        const LINK_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

        #[test]
        fn invite() {
            let email = Email::Invite(InviteEmail {
                inviter: "Ada Lovelace".into(),
                organization: "Acme".into(),
                site: "Docs".into(),
                space: Some("Partners".into()),
                role: "a guest with access to one space",
                message: Some("Welcome aboard!\nThe plans are in the Partners space.".into()),
                link: format!("https://guestpass.example/invite/gpi_{LINK_ID}"),
                expires: moment(),
            });
            insta::assert_snapshot!(shown(email));
        }

        #[test]
        fn sign_in_code() {
            let email = Email::Code(CodeEmail {
                purpose: CodeEmail::SIGN_IN,
                name: "Grace Hopper".into(),
                organization: "Acme".into(),
                code: "042917".into(),
                minutes: 10,
            });
            insta::assert_snapshot!(shown(email));
        }

        #[test]
        fn address_verification_code() {
            let email = Email::Code(CodeEmail {
                purpose: CodeEmail::VERIFY_ADDRESS,
                name: "Grace Hopper".into(),
                organization: "Acme".into(),
                code: "042917".into(),
                minutes: 10,
            });
            insta::assert_snapshot!(shown(email));
        }

        #[test]
        fn password_reset() {
            let email = Email::Reset(ResetEmail {
                name: "Grace Hopper".into(),
                organization: "Acme".into(),
                link: format!("https://guestpass.example/reset/gpr_{LINK_ID}"),
                minutes: 30,
            });
            insta::assert_snapshot!(shown(email));
        }

        #[test]
        fn reverification() {
            let email = Email::Reverify(ReverifyEmail {
                name: "Grace Hopper".into(),
                organization: "Acme".into(),
                link: format!("https://guestpass.example/verify/gpv_{LINK_ID}"),
                until: moment(),
            });
            insta::assert_snapshot!(shown(email));
        }

        fn notice(request: bool, to_guest: bool) -> NoticeEmail {
            NoticeEmail {
                request,
                to_guest,
                recipient: if to_guest {
                    "Grace Hopper"
                } else {
                    "Ada Lovelace"
                }
                .into(),
                guest: "Grace Hopper".into(),
                guest_email: "grace@partner.example".into(),
                site: "Docs".into(),
                organization: "Acme".into(),
                ends: Some(moment()),
                message: request.then(|| "The project runs until March.\nThank you!".into()),
            }
        }

        #[test]
        fn extension_request() {
            let email = Email::Notice(notice(true, false));
            insta::assert_snapshot!(shown(email));
        }

        #[test]
        fn access_ending_to_guest() {
            let email = Email::Notice(notice(false, true));
            insta::assert_snapshot!(shown(email));
        }

        #[test]
        fn access_ending_to_sponsor() {
            let email = Email::Notice(notice(false, false));
            insta::assert_snapshot!(shown(email));
        }
    }
}
