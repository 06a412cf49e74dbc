//! Clear-text login protocols: FTP (RFC 959 §4.1.1 `USER`/`PASS`), POP3 (RFC 1939 §7
//! `USER`/`PASS`/`APOP`, RFC 5034 `AUTH`), IMAP (RFC 9051 §6.2.3 `LOGIN`, §6.2.2
//! `AUTHENTICATE`), SMTP (RFC 4954 `AUTH PLAIN`/`AUTH LOGIN`; the greeting's domain, RFC 5321
//! §4.3.1), IRC (RFC 2812 §3.1 `PASS`/`USER`) and Telnet (a `login:` prompt answered, then a
//! `Password:` prompt answered). A login raises `clear_text_credentials` with the user name
//! in its detail, as nDPI does; the password itself is never kept.
//!
//! State: one partial line per direction, bounded by [`MAX_LINE`] (a longer line is dropped,
//! never grown), and what was found. Must not: keep a password, or trust a length.

use super::util::{MAX_FIELD, MAX_HOST, text};
use super::{Risks, rid};

/// Longest command or reply line kept while waiting for its end.
pub const MAX_LINE: usize = 512;
/// Lines read per direction before giving up (logins happen in the first few).
const MAX_LINES: u16 = 64;

/// Which protocol's commands are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// FTP control.
    Ftp,
    /// POP3.
    Pop3,
    /// IMAP.
    Imap,
    /// SMTP.
    Smtp,
    /// IRC.
    Irc,
    /// Telnet.
    Telnet,
}

impl Dialect {
    /// The dialect of an nDPI protocol name, if it is one of these.
    pub fn of(name: &str) -> Option<Self> {
        Some(match name {
            "FTP_CONTROL" => Self::Ftp,
            "POP3" => Self::Pop3,
            "IMAP" => Self::Imap,
            "SMTP" => Self::Smtp,
            "IRC" => Self::Irc,
            "Telnet" => Self::Telnet,
            _ => return None,
        })
    }
}

/// Telnet login progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Telnet {
    #[default]
    Idle,
    /// The server asked for a login name.
    Login,
    /// The server asked for a password.
    Password,
}

/// Clear-text login state of one flow.
#[derive(Debug)]
pub struct TextFlow {
    dialect: Dialect,
    line: [Vec<u8>; 2],
    lines: [u16; 2],
    /// Host name learned (SMTP greeting domain).
    pub host: String,
    /// User name learned from a login.
    pub user: String,
    telnet: Telnet,
    found: bool,
    risks: Risks,
}

impl TextFlow {
    /// State for `dialect`.
    pub fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            line: Default::default(),
            lines: [0; 2],
            host: String::new(),
            user: String::new(),
            telnet: Telnet::Idle,
            found: false,
            risks: Risks::default(),
        }
    }

    /// Feeds one payload.
    pub fn on_payload(&mut self, from_client: bool, payload: &[u8]) {
        if self.dialect == Dialect::Telnet {
            self.telnet(from_client, payload);
            return;
        }
        let dir = usize::from(!from_client);
        let mut rest = payload;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(end);
            rest = &tail[1..];
            if self.lines[dir] >= MAX_LINES {
                self.line[dir] = Vec::new();
                return;
            }
            self.lines[dir] += 1;
            if self.line[dir].is_empty() {
                self.on_line(from_client, head);
            } else {
                let mut line = std::mem::take(&mut self.line[dir]);
                if line.len() + head.len() <= MAX_LINE {
                    line.extend_from_slice(head);
                    self.on_line(from_client, &line);
                }
            }
        }
        let buf = &mut self.line[dir];
        if buf.len() + rest.len() <= MAX_LINE {
            buf.extend_from_slice(rest);
        } else {
            // Too long to be a command: forget it (and the rest of that line).
            *buf = Vec::new();
        }
    }

    /// Whether nothing more can be learned.
    pub fn is_done(&self) -> bool {
        self.found && (self.dialect != Dialect::Smtp || !self.host.is_empty())
    }

    /// The flow's risks.
    pub fn risks(&self, out: &mut Risks) {
        out.merge(&self.risks);
    }

    /// Frees the line buffers.
    pub fn shrink(&mut self) {
        self.line = Default::default();
    }

    fn login(&mut self, user: &[u8], what: &str) {
        if self.found {
            return;
        }
        self.found = true;
        self.user = text(user.trim_ascii(), MAX_FIELD);
        let detail = if self.user.is_empty() {
            format!("Found {what}")
        } else {
            format!("Found {what} ({})", self.user)
        };
        self.risks.set(rid::CLEAR_TEXT_CREDENTIALS, Some(detail));
    }

    fn on_line(&mut self, from_client: bool, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !from_client {
            // RFC 5321 §4.2: "220 <domain> <text>" greets the client.
            if self.dialect == Dialect::Smtp
                && self.host.is_empty()
                && let Some(rest) = line
                    .strip_prefix(b"220 ")
                    .or_else(|| line.strip_prefix(b"220-"))
            {
                let domain = rest.split(|&b| b == b' ').next().unwrap_or_default();
                self.host = text(domain, MAX_HOST);
            }
            return;
        }
        let (cmd, arg) = split_word(line);
        match self.dialect {
            Dialect::Ftp => {
                if cmd.eq_ignore_ascii_case(b"USER") {
                    self.login(arg, "FTP username");
                }
            }
            Dialect::Pop3 => {
                if cmd.eq_ignore_ascii_case(b"USER") || cmd.eq_ignore_ascii_case(b"APOP") {
                    self.login(split_word(arg).0, "username");
                } else if cmd.eq_ignore_ascii_case(b"AUTH") && plain_auth(arg) {
                    self.login(b"", "POP3 AUTH credentials");
                }
            }
            Dialect::Imap => {
                // "<tag> LOGIN <user> <password>" / "<tag> AUTHENTICATE PLAIN".
                let (verb, args) = split_word(arg);
                if verb.eq_ignore_ascii_case(b"LOGIN") {
                    let user = split_word(args).0;
                    let user = user
                        .strip_prefix(b"\"")
                        .and_then(|u| u.strip_suffix(b"\""))
                        .unwrap_or(user);
                    self.login(user, "IMAP username");
                } else if verb.eq_ignore_ascii_case(b"AUTHENTICATE") && plain_auth(args) {
                    self.login(b"", "IMAP AUTHENTICATE credentials");
                }
            }
            Dialect::Smtp => {
                if cmd.eq_ignore_ascii_case(b"AUTH") && plain_auth(arg) {
                    self.login(b"", "SMTP AUTH credentials");
                }
            }
            Dialect::Irc => {
                if cmd.eq_ignore_ascii_case(b"USER") {
                    self.login(split_word(arg).0, "IRC username");
                } else if cmd.eq_ignore_ascii_case(b"PASS") {
                    self.login(b"", "IRC password");
                }
            }
            Dialect::Telnet => {}
        }
    }

    /// Telnet (RFC 854): option negotiation (IAC sequences) is skipped; a client answer to
    /// a `login:` prompt is the user name, a client answer to `Password:` the login.
    fn telnet(&mut self, from_client: bool, payload: &[u8]) {
        if self.found {
            return;
        }
        let data = strip_iac(payload);
        let data = data.as_slice();
        if !from_client {
            let lower = data.to_ascii_lowercase();
            let has = |w: &[u8]| lower.windows(w.len()).any(|x| x == w);
            if has(b"password:") {
                self.telnet = Telnet::Password;
            } else if has(b"login:") || has(b"username:") {
                self.telnet = Telnet::Login;
                self.line[0].clear();
            }
            return;
        }
        match self.telnet {
            Telnet::Idle => {}
            Telnet::Login => {
                // Characters may come one per packet (character mode).
                let buf = &mut self.line[0];
                for &b in data {
                    if b == b'\r' || b == b'\n' || b == 0 {
                        break;
                    }
                    if buf.len() < 64 {
                        buf.push(b);
                    }
                }
            }
            Telnet::Password => {
                if data.iter().any(|b| !b"\r\n\0".contains(b)) {
                    let user = std::mem::take(&mut self.line[0]);
                    self.login(&user, "Telnet username");
                }
            }
        }
    }
}

/// The first word of `line` and the rest after one run of spaces.
fn split_word(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], line[i + 1..].trim_ascii_start()),
        None => (line, &[]),
    }
}

/// Whether a SASL mechanism sends the password in clear (RFC 4616 PLAIN, LOGIN).
fn plain_auth(arg: &[u8]) -> bool {
    let mech = split_word(arg).0;
    mech.eq_ignore_ascii_case(b"PLAIN") || mech.eq_ignore_ascii_case(b"LOGIN")
}

/// `data` without Telnet IAC commands (RFC 854: IAC cmd, IAC WILL/WONT/DO/DONT opt, IAC SB …
/// IAC SE; IAC IAC is a literal 0xff).
fn strip_iac(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] != 0xff {
            out.push(data[i]);
            i += 1;
            continue;
        }
        match data.get(i + 1) {
            Some(0xff) => {
                out.push(0xff);
                i += 2;
            }
            Some(0xfb..=0xfe) => i += 3,
            Some(0xfa) => {
                // Subnegotiation: skip to IAC SE.
                i = data[i..]
                    .windows(2)
                    .position(|w| w == [0xff, 0xf0])
                    .map_or(data.len(), |p| i + p + 2);
            }
            _ => i += 2,
        }
    }
    out
}

#[cfg(test)]
mod tests;
