//! Raw file structs → checked model, collecting every problem with its place.

use crate::raw::*;
use crate::spanned::{LineIndex, Place, Spanned};
use crate::{Diagnostic, LoadError, Loaded};
use portcullis_hashlist::{Hash, HashKind};
use portcullis_policy::{
    Action, Application, Approval, BlocklistPackage, ChildDefault, ChildFence, Computer, DomainRule, FileAccess,
    FileFence, FileKind, FileRule, Group, IpNet, ItemRef, Mode, NetFence, NetRule, Organization, Os, PathPattern,
    Policy, PolicySet, PortRange, RingfenceProfile, Rule, Scope, SignerCriterion, Status, TextPattern, Timestamp,
    VersionRange,
};
use std::collections::HashMap;

struct Ctx<'a> {
    index: &'a LineIndex<'a>,
    diagnostics: Vec<Diagnostic>,
    /// Place of each item and of its fields, to point model errors at the right spot.
    fields: HashMap<(ItemRef, &'static str), Place>,
    items: HashMap<ItemRef, Place>,
}

impl Ctx<'_> {
    fn error(&mut self, place: &Place, message: String) {
        let (line, column) = self.index.locate(place).unzip();
        self.diagnostics.push(Diagnostic { line, column, message });
    }

    fn note_field<T>(&mut self, item: ItemRef, field: &'static str, value: &Spanned<T>) {
        self.fields.insert((item, field), value.place.clone());
    }
}

pub(crate) fn convert(raw: RawFile, index: &LineIndex<'_>, builtins: &[Application]) -> Result<Loaded, LoadError> {
    let mut cx = Ctx { index, diagnostics: Vec::new(), fields: HashMap::new(), items: HashMap::new() };
    let mut set = PolicySet::default();

    if let Some(org) = &raw.organization {
        cx.items.insert(ItemRef::Organization, org.place.clone());
        let o = org.get();
        set.organization = Organization {
            name: o.name.as_ref().map_or_else(|| "default".to_string(), |n| n.value.clone()),
            mode: mode(&mut cx, &o.mode, &o.until, &o.capture_into, &org.place).unwrap_or(Mode::Secured),
            script_control: o.script_control.as_ref().is_some_and(|s| s.value),
        };
    }
    for (i, g) in raw.groups.iter().enumerate() {
        let item = ItemRef::Group(i);
        cx.items.insert(item, g.place.clone());
        cx.note_field(item, "path", &g.value.path);
        let rg = g.get();
        let m = if rg.mode.is_some() { mode(&mut cx, &rg.mode, &rg.until, &rg.capture_into, &g.place) } else { None };
        set.groups.push(Group { path: g.value.path.value.trim_matches('/').to_string(), mode: m });
    }
    // Parent groups implied by a path ("A/B" implies "A") are added so the tree is complete.
    let mut implied = Vec::new();
    for g in &set.groups {
        for parent in PolicySet::group_chain(&g.path).skip(1) {
            if !set.groups.iter().any(|x| x.path.eq_ignore_ascii_case(parent))
                && !implied.iter().any(|x: &Group| x.path.eq_ignore_ascii_case(parent))
            {
                implied.push(Group { path: parent.to_string(), mode: None });
            }
        }
    }
    set.groups.extend(implied);

    for (i, c) in raw.computers.iter().enumerate() {
        let item = ItemRef::Computer(i);
        cx.items.insert(item, c.place.clone());
        let rc = c.get();
        cx.note_field(item, "name", &rc.name);
        if let Some(g) = &rc.group {
            cx.note_field(item, "group", g);
        }
        let os = rc.os.as_ref().and_then(|o| os_value(&mut cx, o));
        let m = if rc.mode.is_some() { mode(&mut cx, &rc.mode, &rc.until, &rc.capture_into, &c.place) } else { None };
        set.computers.push(Computer {
            name: rc.name.value.clone(),
            group: rc.group.as_ref().map(|g| g.value.trim_matches('/').to_string()),
            mode: m,
            os,
        });
    }

    for (i, a) in raw.applications.iter().enumerate() {
        let item = ItemRef::Application(i);
        cx.items.insert(item, a.place.clone());
        let ra = a.get();
        cx.note_field(item, "name", &ra.name);
        if let Some(b) = builtins.iter().find(|b| b.name.eq_ignore_ascii_case(&ra.name.value)) {
            cx.error(
                &ra.name.place,
                format!("application name {:?} is taken by a built-in application; choose another name", b.name),
            );
        }
        let rules = ra.rules.iter().filter_map(|r| rule(&mut cx, r)).collect();
        let except = ra.except.iter().filter_map(|r| rule(&mut cx, r)).collect();
        set.applications.push(Application {
            name: ra.name.value.clone(),
            description: ra.description.clone(),
            builtin: false,
            rules,
            except,
        });
    }
    set.applications.extend(builtins.iter().cloned());

    for (i, b) in raw.blocklists.iter().enumerate() {
        let item = ItemRef::Blocklist(i);
        cx.items.insert(item, b.place.clone());
        let rb = b.get();
        cx.note_field(item, "name", &rb.name);
        let mut rules = Vec::new();
        let mut imported = Rule { note: Some("imported hashes".into()), ..Rule::default() };
        for (field, list, kind) in [
            ("hashes", &rb.hashes, None),
            ("sha256", &rb.sha256, Some(HashKind::Sha256)),
            ("sha1", &rb.sha1, Some(HashKind::Sha1)),
            ("md5", &rb.md5, Some(HashKind::Md5)),
        ] {
            if let Some(list) = list {
                imported.hashes.flat.extend(hashes(&mut cx, field, list, kind));
            }
        }
        if !imported.hashes.is_empty() {
            rules.push(imported);
        }
        rules.extend(rb.rules.iter().filter_map(|r| rule(&mut cx, r)));
        let mut approvals = Vec::new();
        for (list, status) in [(&rb.approved, Status::Enforce), (&rb.approved_monitor, Status::Monitor)] {
            for s in list {
                cx.fields.insert((item, "approved"), s.place.clone());
                if let Some(scope) = scope(&mut cx, s) {
                    approvals.push(Approval { scope, status });
                }
            }
        }
        if rules.is_empty() {
            cx.fields.insert((item, "rules"), rb.name.place.clone());
        }
        set.blocklists.push(BlocklistPackage {
            name: rb.name.value.clone(),
            description: rb.description.clone(),
            rules,
            approvals,
        });
    }

    for (i, r) in raw.ringfences.iter().enumerate() {
        let item = ItemRef::Ringfence(i);
        cx.items.insert(item, r.place.clone());
        cx.note_field(item, "name", &r.value.name);
        if let Some(children) = &r.value.children {
            cx.note_field(item, "children", children);
        }
        let profile = ringfence(&mut cx, r.get());
        set.ringfences.push(profile);
    }

    for (i, p) in raw.policies.iter().enumerate() {
        let item = ItemRef::Policy(i);
        cx.items.insert(item, p.place.clone());
        let rp = p.get();
        cx.note_field(item, "name", &rp.name);
        cx.note_field(item, "applications", &rp.applications);
        cx.note_field(item, "position", &rp.position);
        let position = match u32::try_from(rp.position.value) {
            Ok(v) => v,
            Err(_) => {
                cx.error(
                    &rp.position.place,
                    format!("position {} is out of range; use a whole number from 0 to 4294967295", rp.position.value),
                );
                0
            }
        };
        let action = match normalize(&rp.action.value).as_str() {
            "permit" | "allow" => match &rp.ringfence {
                Some(r) => {
                    cx.note_field(item, "ringfence", r);
                    Some(Action::PermitWithRingfence(r.value.clone()))
                }
                None => Some(Action::Permit),
            },
            "permit-ringfence" | "permit-with-ringfence" => match &rp.ringfence {
                Some(r) => {
                    cx.note_field(item, "ringfence", r);
                    Some(Action::PermitWithRingfence(r.value.clone()))
                }
                None => {
                    cx.error(
                        &rp.action.place,
                        "action \"permit-ringfence\" needs a ringfence profile: add ringfence = \"<profile name>\""
                            .into(),
                    );
                    None
                }
            },
            "deny" | "block" => Some(Action::Deny),
            "deny-request" | "deny-with-request" => Some(Action::DenyWithRequest),
            other => {
                cx.error(
                    &rp.action.place,
                    format!(
                        "unknown action {other:?}; use \"permit\", \"permit-ringfence\", \"deny\" or \"deny-request\""
                    ),
                );
                None
            }
        };
        if let (Some(r), Some(a)) = (&rp.ringfence, &action)
            && !a.permits()
        {
            cx.error(&r.place, "a ringfence only applies to permit policies; remove it or change the action".into());
        }
        let scope_value = match &rp.scope {
            Some(s) => {
                cx.note_field(item, "scope", s);
                scope(&mut cx, s)
            }
            None => Some(Scope::Organization),
        };
        let status = rp.status.as_ref().map_or(Some(Status::Enforce), |s| status(&mut cx, s));
        let expires = rp.expires.as_ref().and_then(|t| time(&mut cx, t));
        if let (Some(action), Some(scope), Some(status)) = (action, scope_value, status) {
            set.policies.push(Policy {
                name: rp.name.value.clone(),
                description: rp.description.clone(),
                position,
                applications: rp.applications.value.clone(),
                action,
                scope,
                status,
                enabled: rp.enabled.unwrap_or(true),
                expires,
            });
        } else {
            // Keep indexes aligned with the file so later errors point at the right entry.
            set.policies.push(Policy {
                name: rp.name.value.clone(),
                description: None,
                position,
                applications: rp.applications.value.clone(),
                action: Action::Deny,
                scope: Scope::Organization,
                status: Status::Enforce,
                enabled: false,
                expires: None,
            });
        }
    }

    if cx.diagnostics.is_empty() {
        for e in set.validate() {
            let place =
                cx.fields.get(&(e.item, e.field)).or_else(|| cx.items.get(&e.item)).cloned().unwrap_or_default();
            cx.error(&place, e.message);
        }
    }
    if !cx.diagnostics.is_empty() {
        return Err(LoadError { diagnostics: cx.diagnostics });
    }
    let places = cx
        .items
        .iter()
        .filter_map(|(item, place)| {
            cx.fields.get(&(*item, "name")).or(Some(place)).and_then(|p| index.locate(p)).map(|lc| (*item, lc))
        })
        .collect();
    Ok(Loaded { set, places })
}

fn ringfence(cx: &mut Ctx<'_>, r: &RawRingfence) -> RingfenceProfile {
    let mut files = FileFence::default();
    if let Some(f) = &r.files {
        let f = f.get();
        for rule in &f.rules {
            let rr = rule.get();
            let access = file_access(cx, &rr.access);
            if let (Some(path), Some(access)) = (path(cx, &Some(rr.path.clone())), access) {
                files.rules.push(FileRule { path, access });
            }
        }
        if let Some(list) = &f.protected {
            files.protected = list.iter().filter_map(|p| path(cx, &Some(p.clone()))).collect();
        }
        if let Some(a) = &f.protected_access
            && let Some(access) = file_access(cx, a)
        {
            files.protected_access = access;
        }
    }
    let network = r.network.as_ref().map(|n| {
        let n = n.get();
        let mut net = NetFence { dns: n.dns.unwrap_or(true), ..NetFence::default() };
        for rule in &n.allow {
            let rr = rule.get();
            let ports = ports(cx, &rr.ports);
            match IpNet::parse(&rr.cidr.value) {
                Some(ip) => net.allow.push(NetRule { net: ip, ports }),
                None => cx.error(
                    &rr.cidr.place,
                    format!(
                        "{:?} is not an address or CIDR; write e.g. \"198.51.100.0/24\", \"192.0.2.7\" or \"2001:db8::/32\"",
                        rr.cidr.value
                    ),
                ),
            }
        }
        for rule in &n.domains {
            let rd = rule.get();
            let ports = ports(cx, &rd.ports);
            let name = rd.name.value.trim().trim_end_matches('.').to_ascii_lowercase();
            let valid = !name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|l| {
                    !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if valid {
                net.domains.push(DomainRule { name, ports });
            } else {
                cx.error(&rd.name.place, format!("{:?} is not a domain name; write e.g. \"3cx.com\"", rd.name.value));
            }
        }
        net
    });
    let mut children = ChildFence::default();
    if let Some(c) = &r.children {
        let c = c.get();
        children.applications = c.applications.iter().map(|a| a.value.clone()).collect();
        if let Some(o) = &c.others {
            match ChildDefault::parse(&o.value) {
                Some(d) => children.others = d,
                None => cx.error(
                    &o.place,
                    format!("unknown children.others {:?}; use \"deny\", \"no-shells\" or \"allow\"", o.value),
                ),
            }
        }
    }
    RingfenceProfile { name: r.name.value.clone(), description: r.description.clone(), files, network, children }
}

fn file_access(cx: &mut Ctx<'_>, s: &Spanned<String>) -> Option<FileAccess> {
    let access = FileAccess::parse(&s.value);
    if access.is_none() {
        cx.error(&s.place, format!("unknown file access {:?}; use \"none\", \"read\" or \"read-write\"", s.value));
    }
    access
}

fn ports(cx: &mut Ctx<'_>, list: &[Spanned<PortText>]) -> Vec<PortRange> {
    list.iter()
        .filter_map(|p| {
            let range = PortRange::parse(&p.value.0);
            if range.is_none() {
                cx.error(
                    &p.place,
                    format!("{:?} is not a port or port range; write 443 or \"5060-5090\" (0-65535)", p.value.0),
                );
            }
            range
        })
        .collect()
}

fn normalize(s: &str) -> String {
    s.trim().to_ascii_lowercase().replace(['_', ' '], "-")
}

/// The mode fields, read the same way on the organization, groups and computers.
fn mode(
    cx: &mut Ctx<'_>,
    mode: &Option<Spanned<String>>,
    until: &Option<Spanned<TimeText>>,
    capture_into: &Option<Spanned<String>>,
    place: &Place,
) -> Option<Mode> {
    let name = mode.as_ref().map_or("secured".to_string(), |m| normalize(&m.value));
    let mode_place = mode.as_ref().map_or(place, |m| &m.place).clone();
    let until = until.as_ref().and_then(|t| time(cx, t));
    match name.as_str() {
        "secured" | "secure" | "enforce" => Some(Mode::Secured),
        "monitor" | "monitor-only" | "audit" => Some(Mode::Monitor),
        "learning" => match until {
            Some(until) => Some(Mode::Learning { until }),
            None => {
                cx.error(&mode_place, "mode \"learning\" needs an end: add until = \"YYYY-MM-DD\"".into());
                None
            }
        },
        "installation" => match (until, capture_into) {
            (Some(until), Some(app)) => Some(Mode::Installation { until, capture_into: app.value.clone() }),
            _ => {
                cx.error(
                    &mode_place,
                    "mode \"installation\" needs until = \"<date-time>\" and capture_into = \"<application name>\""
                        .into(),
                );
                None
            }
        },
        other => {
            cx.error(
                &mode_place,
                format!("unknown mode {other:?}; use \"secured\", \"monitor\", \"learning\" or \"installation\""),
            );
            None
        }
    }
}

fn status(cx: &mut Ctx<'_>, s: &Spanned<String>) -> Option<Status> {
    match normalize(&s.value).as_str() {
        "enforce" | "enforced" => Some(Status::Enforce),
        "monitor" | "monitor-only" | "audit" => Some(Status::Monitor),
        other => {
            cx.error(&s.place, format!("unknown status {other:?}; use \"enforce\" or \"monitor\""));
            None
        }
    }
}

fn scope(cx: &mut Ctx<'_>, s: &Spanned<String>) -> Option<Scope> {
    match s.value.parse::<Scope>() {
        Ok(scope) => Some(scope),
        Err(e) => {
            cx.error(&s.place, e.to_string());
            None
        }
    }
}

fn os_value(cx: &mut Ctx<'_>, s: &Spanned<String>) -> Option<Os> {
    let os = Os::from_name(s.value.trim());
    if os.is_none() {
        cx.error(&s.place, format!("unknown operating system {:?}; use \"windows\", \"linux\" or \"macos\"", s.value));
    }
    os
}

/// A moment as policy files write it: an RFC 3339 time, or a date or date-time in UTC.
pub fn parse_time(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    text.parse::<jiff::Timestamp>()
        .ok()
        .or_else(|| {
            text.parse::<jiff::civil::DateTime>()
                .ok()
                .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
                .map(|z| z.timestamp())
        })
        .or_else(|| {
            text.parse::<jiff::civil::Date>()
                .ok()
                .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
                .map(|z| z.timestamp())
        })
        .map(|ts| Timestamp(ts.as_second()))
}

fn time(cx: &mut Ctx<'_>, t: &Spanned<TimeText>) -> Option<Timestamp> {
    let text = t.value.0.trim();
    match parse_time(text) {
        Some(ts) => Some(ts),
        None => {
            cx.error(&t.place, format!("{text:?} is not a date; write \"2026-12-31\" or \"2026-12-31T08:00:00Z\" (UTC unless an offset is given)"));
            None
        }
    }
}

fn hashes(cx: &mut Ctx<'_>, field: &str, list: &Spanned<Vec<String>>, kind: Option<HashKind>) -> Vec<Hash> {
    let mut out = Vec::with_capacity(list.value.len());
    for (i, text) in list.value.iter().enumerate() {
        let t = text.trim();
        let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
        match (Hash::from_hex(t), kind) {
            (Some(h), Some(k)) if h.kind() != k => {
                cx.error(
                    &list.place,
                    format!(
                        "entry {} of {field} is a {}, not a {k} ({text:?}); move it to the {} list",
                        i + 1,
                        h.kind(),
                        h.kind()
                    ),
                );
            }
            (Some(h), _) => out.push(h),
            (None, _) => {
                let want = kind.map_or("an MD5, SHA-1 or SHA-256 in hex (32, 40 or 64 digits)".to_string(), |k| {
                    format!("a {k} in hex ({} digits)", k.byte_len() * 2)
                });
                cx.error(&list.place, format!("entry {} of {field} is not {want}: {text:?}", i + 1));
            }
        }
    }
    out
}

/// Compile an optional pattern, reporting a bad one where it was written.
fn pattern<P>(
    cx: &mut Ctx<'_>,
    s: &Option<Spanned<String>>,
    compile: fn(&str) -> Result<P, portcullis_policy::PatternError>,
) -> Option<P> {
    let s = s.as_ref()?;
    compile(&s.value).map_err(|e| cx.error(&s.place, e.to_string())).ok()
}

fn text(cx: &mut Ctx<'_>, s: &Option<Spanned<String>>) -> Option<TextPattern> {
    pattern(cx, s, TextPattern::new)
}

fn path(cx: &mut Ctx<'_>, s: &Option<Spanned<String>>) -> Option<PathPattern> {
    pattern(cx, s, PathPattern::new)
}

/// `TEAMID:identifier` (a team ID is 10 capital letters and digits) or
/// `platform:identifier`; the identifier may be a pattern, the team may be `*`.
pub fn signing_id_form(value: &str) -> bool {
    let Some((team, id)) = value.trim().split_once(':') else { return false };
    let team_ok = team == "platform"
        || team == "*"
        || (team.len() == 10 && team.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
    team_ok && !id.is_empty() && !id.contains(char::is_whitespace)
}

fn rule(cx: &mut Ctx<'_>, r: &Spanned<RawRule>) -> Option<Rule> {
    let before = cx.diagnostics.len();
    let raw = r.get();
    let mut rule = Rule { note: raw.note.clone(), ..Rule::default() };
    for (field, list, kind) in [
        ("hashes", &raw.hashes, None),
        ("sha256", &raw.sha256, Some(HashKind::Sha256)),
        ("sha1", &raw.sha1, Some(HashKind::Sha1)),
        ("md5", &raw.md5, Some(HashKind::Md5)),
    ] {
        if let Some(list) = list {
            rule.hashes.flat.extend(hashes(cx, field, list, kind));
        }
    }
    for (field, list, kind) in [
        ("authenticode_sha256", &raw.authenticode_sha256, HashKind::Sha256),
        ("authenticode_sha1", &raw.authenticode_sha1, HashKind::Sha1),
    ] {
        if let Some(list) = list {
            rule.hashes.authenticode.extend(hashes(cx, field, list, Some(kind)));
        }
    }
    rule.path = path(cx, &raw.path);
    rule.file_name = text(cx, &raw.file_name);
    rule.original_filename = text(cx, &raw.original_filename);
    rule.product_name = text(cx, &raw.product_name);
    rule.company_name = text(cx, &raw.company_name);
    if let Some(s) = &raw.signing_id
        && !signing_id_form(&s.value)
    {
        cx.error(
            &s.place,
            format!(
                "signing_id must be a team ID and an identifier, as Santa reports them: \"EQHXZ8M8AV:com.google.Chrome\" \
                 (or \"platform:com.apple.ls\" for Apple's own programs), not {:?}",
                s.value
            ),
        );
    }
    rule.signing_id = text(cx, &raw.signing_id);
    rule.package = text(cx, &raw.package);
    rule.parent_process = path(cx, &raw.parent_process);
    rule.user = text(cx, &raw.user);
    if let Some(s) = &raw.signer {
        let rs = s.get();
        let cert_sha256 = rs.cert_sha256.as_ref().and_then(|c| match Hash::from_hex(c.value.trim()) {
            Some(Hash::Sha256(b)) => Some(b),
            _ => {
                cx.error(
                    &c.place,
                    format!(
                        "signer.cert_sha256 must be the certificate's SHA-256 in hex (64 digits), not {:?}",
                        c.value
                    ),
                );
                None
            }
        });
        let subject = text(cx, &rs.subject);
        let issuer = text(cx, &rs.issuer);
        if rs.subject.is_none() && rs.issuer.is_none() && rs.cert_sha256.is_none() && !rs.verified {
            cx.error(&s.place, "signer needs at least one of subject, issuer, cert_sha256 or verified = true".into());
        }
        rule.signer = Some(SignerCriterion { subject, issuer, cert_sha256, must_verify: rs.verified });
    }
    if let Some(v) = &raw.version {
        match v.value.parse::<VersionRange>() {
            Ok(range) => rule.version = Some(range),
            Err(e) => cx.error(&v.place, e.to_string()),
        }
    }
    rule.os = raw.os.as_ref().and_then(|o| os_value(cx, o));
    if let Some(k) = &raw.kind {
        rule.kind = FileKind::from_name(&k.value);
        if rule.kind.is_none() {
            cx.error(
                &k.place,
                format!(
                    "unknown kind {:?}; use \"executable\", \"library\", \"script\", \"installer\" or \"other\"",
                    k.value
                ),
            );
        }
    }
    (cx.diagnostics.len() == before).then_some(rule)
}
