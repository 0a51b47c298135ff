//! The `--net-fault` grammar: which network faults hit which requests.
//!
//! ```text
//! SPEC    := ITEM ("," ITEM)*
//! ITEM    := "seed=" INT | RULE
//! RULE    := FAULT ["@" TARGET] ["/" LIMIT] ["%" PERCENT]
//! FAULT   := "drop" [":" BYTES]      connection reset after BYTES of the body (default: half)
//!          | "truncate" [":" BYTES]  body cut short by BYTES (default: half), then a clean close
//!          | "overlong" [":" BYTES]  BYTES extra junk appended, Content-Length raised to match
//!          | "endless"               junk body without a length, until the device hangs up
//!          | "flip" [":" COUNT]      COUNT body bytes flipped (default 1)
//!          | "stall" [":" DURATION]  half the body, a pause of DURATION (default 30s), the rest
//!          | "delay:" DURATION       the answer held back for DURATION
//!          | "status:" CODE          answered with CODE (4xx/5xx), the server never asked
//!          | "5xx"                   same as status:503
//!          | "norange"               Range header removed: the server answers 200, whole body
//!          | "reset"                 connection closed without an answer
//! TARGET  := "any" | "req:" N ["-" M] | KIND [":" INDEX]
//! KIND    := "checkin" | "chunk" | "hashlist" | "event" | "manifest" | "status" | "rollback"
//! INDEX   := N | "*"
//! LIMIT   := N | "*"
//! ```
//!
//! - A rule without `@` targets `any` request.
//! - `req:N` is the N-th request the device makes (1-based, counted over the whole run).
//! - `chunk:K` is image chunk K, numbered from 0 as the seed numbers them: the legacy
//!   `chunk?chunk_number=K`, or the v2 ranged GET on the image blob whose offset is K chunk
//!   lengths in. `checkin:N` is the N-th v2 check-in or legacy manifest poll (1-based);
//!   `hashlist`, `event`, `manifest`, `status`, `rollback` (legacy rollback-status) name the
//!   other request kinds. An index of `*` or none matches every request of the kind.
//! - `LIMIT` is how many times the rule fires: 1 by default, `*` for always. With `%PERCENT`
//!   the rule fires on each matching request with that chance (from the seed) and the limit
//!   defaults to `*`.
//! - Durations are like `500ms`, `2s`, `1m`.
//!
//! Examples: `drop@chunk:3` (reset the connection in the middle of chunk 3, once),
//! `flip:4@chunk:*/2`, `5xx%20,seed=7`, `norange@any/*`, `stall:15s@chunk:5`.

use core::fmt;
use core::time::Duration;

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Connection reset after this many body bytes (`None`: half the body).
    Drop(Option<usize>),
    /// Body cut short by this many bytes (`None`: half), then a clean close.
    Truncate(Option<usize>),
    /// This many junk bytes appended, the declared length raised to match.
    Overlong(usize),
    /// A junk body without a length that never ends.
    Endless,
    /// This many body bytes flipped.
    Flip(usize),
    /// Half the body, a pause, the rest.
    Stall(Duration),
    /// The whole answer held back.
    Delay(Duration),
    /// An answer with this status, the server never asked.
    Status(u16),
    /// The `Range` header removed from the request.
    NoRange,
    /// The connection closed without an answer.
    Reset,
}

/// The kinds of device requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// v2 check-in.
    Checkin,
    /// Image bytes (v2 ranged GET of the image blob, legacy chunk).
    Chunk,
    /// v2 hash-list page.
    Hashlist,
    /// v2 event.
    Event,
    /// Legacy manifest poll.
    Manifest,
    /// Legacy status report.
    Status,
    /// Legacy rollback-status poll.
    Rollback,
    /// Anything else.
    Other,
}

impl Kind {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "checkin" => Self::Checkin,
            "chunk" => Self::Chunk,
            "hashlist" => Self::Hashlist,
            "event" => Self::Event,
            "manifest" => Self::Manifest,
            "status" => Self::Status,
            "rollback" => Self::Rollback,
            _ => return None,
        })
    }
}

/// Which requests a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// Every request.
    Any,
    /// Requests N..=M of the run (1-based).
    Requests(u64, u64),
    /// Requests of a kind; with an index, only that one (chunk number from 0; the N-th
    /// check-in from 1).
    Kind(Kind, Option<u64>),
}

/// What the proxy knows about one request when it decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestInfo {
    /// 1-based number of the request in the run.
    pub number: u64,
    /// Its kind.
    pub kind: Kind,
    /// Chunk number (for chunks), or the 1-based ordinal of the check-in (for check-ins and
    /// manifest polls).
    pub index: Option<u64>,
}

impl Target {
    /// Whether this target covers `req`.
    pub fn matches(&self, req: &RequestInfo) -> bool {
        match *self {
            Self::Any => true,
            Self::Requests(a, b) => (a..=b).contains(&req.number),
            Self::Kind(kind, None) => {
                kind == req.kind || (kind == Kind::Checkin && req.kind == Kind::Manifest)
            }
            Self::Kind(kind, Some(i)) => {
                (kind == req.kind || (kind == Kind::Checkin && req.kind == Kind::Manifest))
                    && req.index == Some(i)
            }
        }
    }
}

/// One rule of a spec.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// The fault.
    pub fault: Fault,
    /// Which requests.
    pub target: Target,
    /// How many times it fires (`None`: unlimited).
    pub limit: Option<u64>,
    /// Chance per matching request, 0.0–1.0 (1.0 without `%`).
    pub probability: f64,
}

/// A parsed `--net-fault` spec.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NetFaultSpec {
    /// The rules, in order; the first that fires on a request wins.
    pub rules: Vec<Rule>,
    /// Seed of the random choices (probabilities, flipped positions, junk bytes).
    pub seed: u64,
}

/// Why a spec did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--net-fault {item:?}: {message}")]
pub struct SpecError {
    /// The item in error.
    pub item: String,
    /// What is wrong.
    pub message: String,
}

fn err(item: &str, message: impl Into<String>) -> SpecError {
    SpecError {
        item: item.into(),
        message: message.into(),
    }
}

/// Parses `500ms`, `2s`, `1m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (num, unit) = if split == 0 {
        return None;
    } else {
        s.split_at(split)
    };
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

fn parse_fault(item: &str, s: &str) -> Result<Fault, SpecError> {
    let (name, arg) = match s.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (s, None),
    };
    let num = |a: Option<&str>| -> Result<Option<usize>, SpecError> {
        a.map(|a| {
            a.parse()
                .map_err(|_| err(item, format!("{a:?} is not a byte count")))
        })
        .transpose()
    };
    let dur =
        |a: &str| parse_duration(a).ok_or_else(|| err(item, format!("{a:?} is not a duration")));
    Ok(match name {
        "drop" => Fault::Drop(num(arg)?),
        "truncate" => Fault::Truncate(num(arg)?),
        "overlong" => Fault::Overlong(num(arg)?.unwrap_or(1024)),
        "endless" => Fault::Endless,
        "flip" => Fault::Flip(num(arg)?.unwrap_or(1).max(1)),
        "stall" => Fault::Stall(arg.map(dur).transpose()?.unwrap_or(Duration::from_secs(30))),
        "delay" => Fault::Delay(dur(arg.ok_or_else(|| err(item, "delay needs a duration"))?)?),
        "status" => {
            let code: u16 = arg
                .and_then(|a| a.parse().ok())
                .filter(|c| (400..=599).contains(c))
                .ok_or_else(|| err(item, "status needs a code 400-599"))?;
            Fault::Status(code)
        }
        "5xx" => Fault::Status(503),
        "norange" => Fault::NoRange,
        "reset" => Fault::Reset,
        other => return Err(err(item, format!("unknown fault {other:?}"))),
    })
}

fn parse_target(item: &str, s: &str) -> Result<Target, SpecError> {
    if s == "any" {
        return Ok(Target::Any);
    }
    let (name, arg) = match s.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (s, None),
    };
    if name == "req" {
        let arg = arg.ok_or_else(|| err(item, "req needs a number"))?;
        let (a, b) = match arg.split_once('-') {
            Some((a, b)) => (a, b),
            None => (arg, arg),
        };
        let a: u64 = a.parse().map_err(|_| err(item, "bad request number"))?;
        let b: u64 = b.parse().map_err(|_| err(item, "bad request number"))?;
        if a == 0 || b < a {
            return Err(err(item, "requests are numbered from 1, N-M with N <= M"));
        }
        return Ok(Target::Requests(a, b));
    }
    let kind =
        Kind::from_name(name).ok_or_else(|| err(item, format!("unknown target {name:?}")))?;
    let index = match arg {
        None | Some("*") => None,
        Some(i) => Some(
            i.parse()
                .map_err(|_| err(item, format!("bad index {i:?}")))?,
        ),
    };
    Ok(Target::Kind(kind, index))
}

impl NetFaultSpec {
    /// Parses a spec (see the module documentation). An empty string is no fault.
    pub fn parse(spec: &str) -> Result<Self, SpecError> {
        let mut out = Self::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Some(seed) = item.strip_prefix("seed=") {
                out.seed = seed
                    .parse()
                    .map_err(|_| err(item, "seed must be an integer"))?;
                continue;
            }
            let mut rest = item;
            let mut probability = None;
            if let Some((r, p)) = rest.rsplit_once('%') {
                let p: f64 = p.parse().map_err(|_| err(item, "bad percentage"))?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(err(item, "percentage must be 0-100"));
                }
                probability = Some(p / 100.0);
                rest = r;
            }
            let mut limit = if probability.is_some() { None } else { Some(1) };
            if let Some((r, l)) = rest.rsplit_once('/') {
                limit = match l {
                    "*" => None,
                    n => Some(
                        n.parse()
                            .ok()
                            .filter(|&n: &u64| n > 0)
                            .ok_or_else(|| err(item, "limit must be a positive count or *"))?,
                    ),
                };
                rest = r;
            }
            let (fault, target) = match rest.split_once('@') {
                Some((f, t)) => (parse_fault(item, f)?, parse_target(item, t)?),
                None => (parse_fault(item, rest)?, Target::Any),
            };
            out.rules.push(Rule {
                fault,
                target,
                limit,
                probability: probability.unwrap_or(1.0),
            });
        }
        Ok(out)
    }

    /// Whether the spec has no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Drop(n) => write!(f, "drop{}", n.map(|n| format!(":{n}")).unwrap_or_default()),
            Self::Truncate(n) => {
                write!(
                    f,
                    "truncate{}",
                    n.map(|n| format!(":{n}")).unwrap_or_default()
                )
            }
            Self::Overlong(n) => write!(f, "overlong:{n}"),
            Self::Endless => f.write_str("endless"),
            Self::Flip(n) => write!(f, "flip:{n}"),
            Self::Stall(d) => write!(f, "stall:{}ms", d.as_millis()),
            Self::Delay(d) => write!(f, "delay:{}ms", d.as_millis()),
            Self::Status(c) => write!(f, "status:{c}"),
            Self::NoRange => f.write_str("norange"),
            Self::Reset => f.write_str("reset"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_examples() {
        let s = NetFaultSpec::parse("drop@chunk:3").unwrap();
        assert_eq!(
            s.rules,
            vec![Rule {
                fault: Fault::Drop(None),
                target: Target::Kind(Kind::Chunk, Some(3)),
                limit: Some(1),
                probability: 1.0
            }]
        );
        let s = NetFaultSpec::parse("flip:4@chunk:*/2").unwrap();
        assert_eq!(s.rules[0].fault, Fault::Flip(4));
        assert_eq!(s.rules[0].target, Target::Kind(Kind::Chunk, None));
        assert_eq!(s.rules[0].limit, Some(2));
        let s = NetFaultSpec::parse("5xx%20,seed=7").unwrap();
        assert_eq!(s.seed, 7);
        assert_eq!(s.rules[0].fault, Fault::Status(503));
        assert_eq!(s.rules[0].limit, None);
        assert!((s.rules[0].probability - 0.2).abs() < 1e-9);
        let s = NetFaultSpec::parse("norange@any/*, stall:15s@chunk:5").unwrap();
        assert_eq!(s.rules[0].limit, None);
        assert_eq!(s.rules[1].fault, Fault::Stall(Duration::from_secs(15)));
        let s = NetFaultSpec::parse("status:500@req:2-4,delay:250ms").unwrap();
        assert_eq!(s.rules[0].target, Target::Requests(2, 4));
        assert_eq!(s.rules[1].fault, Fault::Delay(Duration::from_millis(250)));
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "explode",
            "drop@chunk:x",
            "status:200",
            "drop@req:0",
            "drop@req:5-2",
            "flip%150",
            "drop/0",
            "delay",
            "stall:fast",
            "drop@nowhere",
        ] {
            assert!(NetFaultSpec::parse(bad).is_err(), "{bad}");
        }
        assert!(NetFaultSpec::parse("").unwrap().is_empty());
    }

    #[test]
    fn targets() {
        let chunk3 = RequestInfo {
            number: 9,
            kind: Kind::Chunk,
            index: Some(3),
        };
        assert!(Target::Kind(Kind::Chunk, Some(3)).matches(&chunk3));
        assert!(!Target::Kind(Kind::Chunk, Some(2)).matches(&chunk3));
        assert!(Target::Requests(9, 9).matches(&chunk3));
        let manifest = RequestInfo {
            number: 1,
            kind: Kind::Manifest,
            index: Some(1),
        };
        assert!(Target::Kind(Kind::Checkin, Some(1)).matches(&manifest));
        assert!(Target::Kind(Kind::Manifest, None).matches(&manifest));
    }
}
