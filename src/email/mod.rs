//! Emails: templates (files under `templates/email`, compiled into the binary) rendered into multipart
//! messages, and the transport that sends them (pooled async SMTP, or `.eml` files in an outbox).

use askama::Template;
use lettre::message::{Mailbox, MultiPart, header};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;
use std::time::Duration;

/// What an invite email says. Every field is plain text; the HTML template escapes it.
#[derive(Clone, Debug)]
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
#[derive(Clone, Debug)]
pub struct CodeEmail {
    /// What the code is for, completing "Your code to ...": "finish signing in to" or "verify your
    /// email address for".
    pub purpose: &'static str,
    pub name: String,
    pub organization: String,
    pub code: String,
    pub minutes: i64,
}

/// A password reset link.
#[derive(Clone, Debug)]
pub struct ResetEmail {
    pub name: String,
    pub organization: String,
    pub link: String,
    pub minutes: i64,
}

/// A re-verification link (the scheduler's reminder).
#[derive(Clone, Debug)]
pub struct ReverifyEmail {
    pub name: String,
    pub organization: String,
    pub link: String,
    /// When the current period ends, e.g. "4 December 2026 at 09:30 UTC".
    pub until: String,
}

/// A message about a guest's access: a reminder before it ends (to the guest or their sponsor), or a
/// guest asking their sponsor for more time.
#[derive(Clone, Debug)]
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

/// Why a send failed, which decides what happens next.
#[derive(Debug)]
pub enum SendError {
    /// Try again later: connection refused or dropped, timeouts, 4xx replies.
    Transient(String),
    /// The server refused this recipient or message for good (5xx): do not retry.
    Permanent(String),
    /// Our own configuration is wrong (authentication refused, TLS failure): keep retrying and say so.
    Configuration(String),
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
}
