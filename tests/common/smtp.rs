//! A real SMTP server over TCP that records what arrives, for end-to-end email tests. It can refuse
//! recipients (550) or be started late (to test outages).

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Clone, Debug)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    pub at: std::time::Instant,
}

impl Received {
    /// A header's value (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The message with quoted-printable soft breaks and `=XX` escapes undone (good enough for asserts).
    pub fn decoded(&self) -> String {
        let s = self.data.replace("=\r\n", "");
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'='
                && i + 2 < b.len()
                && b[i + 1].is_ascii_hexdigit()
                && b[i + 2].is_ascii_hexdigit()
            {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        normalize_entities(&String::from_utf8_lossy(&out))
    }

    /// The accept link in the text part.
    pub fn invite_link(&self) -> String {
        let d = self.decoded();
        let start = d.find("http").expect("a link in the email");
        d[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches('"')
            .to_string()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Accept,
    /// Refuse every recipient with 550.
    RejectRecipients,
    /// Offer AUTH and refuse every credential with 535 (a misconfigured sender).
    RejectAuth,
}

#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    pub received: Arc<Mutex<Vec<Received>>>,
    mode: Arc<Mutex<Mode>>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, Mode::Accept)
    }

    /// Starts on a given port (e.g. one the app was configured with while nothing listened there).
    pub async fn start_on(port: u16, mode: Mode) -> Self {
        let mut tries = 0;
        loop {
            match TcpListener::bind(("127.0.0.1", port)).await {
                Ok(l) => return Self::serve(l, mode),
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot bind SMTP sink on {port}: {e}"),
            }
        }
    }

    pub async fn start_with(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, mode)
    }

    fn serve(listener: TcpListener, mode: Mode) -> Self {
        let port = listener.local_addr().unwrap().port();
        let sink = Self {
            port,
            received: Arc::default(),
            mode: Arc::new(Mutex::new(mode)),
        };
        let s = sink.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = s.session(sock).await;
                });
            }
        });
        sink
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages arrived (or the timeout passes) and returns them all.
    pub async fn wait_for(&self, n: usize, timeout: std::time::Duration) -> Vec<Received> {
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            if self.messages().len() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.messages()
    }

    async fn session(&self, sock: tokio::net::TcpStream) -> std::io::Result<()> {
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        w.write_all(b"220 sink.test ESMTP ready\r\n").await?;
        let (mut from, mut to) = (String::new(), Vec::new());
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let cmd = line.trim_end().to_string();
            let upper = cmd.to_ascii_uppercase();
            if upper.starts_with("EHLO") {
                w.write_all(b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                    .await?;
            } else if upper.starts_with("HELO") {
                w.write_all(b"250 sink.test\r\n").await?;
            } else if upper.starts_with("MAIL FROM:") {
                from = cmd[10..]
                    .trim()
                    .trim_matches(|c| c == '<' || c == '>')
                    .to_string();
                to.clear();
                w.write_all(b"250 OK\r\n").await?;
            } else if upper.starts_with("RCPT TO:") {
                if *self.mode.lock().unwrap() == Mode::RejectRecipients {
                    w.write_all(b"550 5.1.1 No such user here\r\n").await?;
                } else {
                    to.push(
                        cmd[8..]
                            .trim()
                            .trim_matches(|c| c == '<' || c == '>')
                            .to_string(),
                    );
                    w.write_all(b"250 OK\r\n").await?;
                }
            } else if upper == "DATA" {
                w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    let l = line.strip_prefix('.').unwrap_or(&line);
                    data.push_str(l);
                }
                self.received.lock().unwrap().push(Received {
                    from: from.clone(),
                    to: to.clone(),
                    data,
                    at: std::time::Instant::now(),
                });
                w.write_all(b"250 OK queued\r\n").await?;
            } else if upper == "QUIT" {
                w.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            } else if upper == "RSET" || upper == "NOOP" {
                w.write_all(b"250 OK\r\n").await?;
            } else {
                w.write_all(b"502 Command not implemented\r\n").await?;
            }
        }
    }
}

/// Numeric and named escapes of `<`, `>`, `&`, `"` and `'` are equivalent; tests compare the named forms.
pub fn normalize_entities(s: &str) -> String {
    s.replace("&#60;", "&lt;")
        .replace("&#62;", "&gt;")
        .replace("&#38;", "&amp;")
        .replace("&#34;", "&quot;")
        .replace("&#39;", "&#x27;")
}
