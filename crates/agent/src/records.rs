//! Events as the agent records them ([`portcullis_events::Record`]): from a judged outcome,
//! from an open the deadline keeper answered, from a network refusal of the kernel's; and
//! the thread that writes them to the spool.

use crate::facts::fd_path;
use crate::fencing::Fencing;
use crate::identity::{self, FileKey};
use crate::judge::Report;
use crate::process::{self, ProcessInfo};
use crate::state::{Pending, Shared, event_time, now};
use portcullis_events::spool::Spool;
use portcullis_events::{Access, EventKind, FileRecord, ProcessRecord, Record, RingfenceRecord, SignerRecord, Verdict};
use portcullis_fanotify::{Mask, Response};
use portcullis_policy::{Decision, FileFacts};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// A kernel answer as events name it.
pub(crate) fn answered(response: Response) -> Verdict {
    if response == Response::Allow { Verdict::Allow } else { Verdict::Deny }
}

/// What an event says about its file: the hash and kind, and what the file says it is.
pub(crate) fn file_record(path: String, key: FileKey, facts: Option<&FileFacts>) -> FileRecord {
    FileRecord {
        path,
        sha256: facts.map(|f| portcullis_inspect::hex(&f.sha256)).unwrap_or_default(),
        size: key.size,
        kind: facts.map(|f| f.kind.name().to_owned()).unwrap_or_default(),
        dev: key.dev,
        ino: key.ino,
        original_filename: facts.and_then(|f| f.original_filename.clone()),
        product_name: facts.and_then(|f| f.product_name.clone()),
        company_name: facts.and_then(|f| f.company_name.clone()),
        signer: facts.and_then(|f| f.signer.as_ref()).map(|s| SignerRecord {
            subject: s.subject.clone(),
            issuer: s.issuer.clone(),
            cert_sha256: portcullis_inspect::hex(&s.cert_sha256),
            verified: s.verified,
        }),
        signing_id: facts.and_then(|f| f.signing_id.clone()),
        packages: facts.map(|f| f.packages.clone()).unwrap_or_default(),
    }
}

/// The process of an event and its ancestors, with user names.
pub(crate) fn process_record(shared: &Shared, info: ProcessInfo, ancestors: Vec<ProcessInfo>) -> ProcessRecord {
    ProcessRecord {
        pid: info.pid,
        user: info.uid.map(|u| shared.users.name(u)),
        exe: info.exe,
        uid: info.uid,
        ancestors,
    }
}

/// The ancestors of a process, read now (once the event is answered they may be gone).
pub(crate) fn ancestors(info: &ProcessInfo) -> Vec<ProcessInfo> {
    info.ppid.map(|pp| process::chain(pp, 32)).unwrap_or_default()
}

/// The record of a judged event. `answered_late`: the deadline keeper answered first, with
/// the overload verdict, so neither the decision nor a ringfence decided.
pub(crate) struct Judged {
    pub(crate) report: Report,
    pub(crate) decision: Option<Decision>,
    pub(crate) access: Access,
    pub(crate) key: FileKey,
    pub(crate) process: ProcessInfo,
    pub(crate) ancestors: Vec<ProcessInfo>,
    pub(crate) answered_late: bool,
}

/// The record of a judged event.
pub(crate) fn record_of(shared: &Shared, j: Judged) -> Record {
    let mode = shared.policy().target.mode().at(now());
    let event = if j.answered_late { EventKind::Overload } else { j.report.event };
    let overload = answered(shared.overload(j.access.is_code()));
    // A ringfence's refusal speaks for itself; else the policy's decision; else (the file
    // could not be read) the report's reason.
    let fenced = j.report.fence.as_ref().map(|(rf, _)| {
        let verdict = answered(if rf.tag.enforce { Response::Deny } else { Response::Allow });
        (verdict, Some(rf.policy.clone()), j.report.reason.clone().unwrap_or_default())
    });
    let decided = j.decision.as_ref().map(|d| {
        let verdict =
            answered(if d.verdict == portcullis_policy::Verdict::Allow { Response::Allow } else { Response::Deny });
        let mut reason = d.explain();
        // A file that a package lists but that is not its file any more says so.
        if d.policy().is_none()
            && let Some(note) = j.report.facts.as_deref().and_then(|f| f.package_note.as_deref())
        {
            reason.push_str(&format!(" (not trusted as a package file: {note})"));
        }
        (verdict, d.policy().map(str::to_owned), reason)
    });
    let (verdict, policy_name, reason) = match fenced.or(decided) {
        Some((_, policy, judged)) if j.answered_late => (
            overload,
            policy,
            format!("answered {overload} (the overload verdict) before it was judged; the judgement was: {judged}"),
        ),
        Some(judged) => judged,
        None => (overload, None, j.report.reason.unwrap_or_default()),
    };
    // Answered by the deadline keeper: the ringfence did not decide.
    let fence = if event == EventKind::Overload { None } else { j.report.fence };
    Record {
        bypass: shared.policy().bypass,
        time: event_time(),
        event,
        access: j.access,
        verdict,
        mode: mode.name().to_owned(),
        policy: policy_name,
        reason,
        file: file_record(j.report.path, j.key, j.report.facts.as_deref()),
        process: process_record(shared, j.process, j.ancestors),
        ringfence: fence.map(|(rf, denial)| RingfenceRecord {
            profile: rf.profile,
            rule: denial.rule,
            enforced: rf.tag.enforce,
            destination: None,
        }),
    }
}

/// The event for an open answered by the deadline keeper: what is known without judging it.
pub(crate) fn overload_record(shared: &Shared, p: &Pending, timeout: Duration) -> Record {
    let fd = p.event.fd.as_ref().map(|f| f.as_fd());
    let stat = fd.and_then(|fd| identity::fstat(fd).ok());
    let info = process::info(p.event.pid);
    let ancestors = ancestors(&info);
    let code = p.is_code();
    let verdict = answered(shared.overload(code));
    let access = match p.access.get() {
        Some(a) => *a,
        None if p.event.mask.intersects(Mask::OPEN_EXEC_PERM) => Access::Exec,
        None => Access::Open,
    };
    Record {
        bypass: shared.policy().bypass,
        time: event_time(),
        event: EventKind::Overload,
        access,
        verdict,
        mode: shared.policy().target.mode().at(now()).name().into(),
        policy: None,
        reason: format!(
            "not judged within {} ms; answered {verdict} (the overload verdict for {})",
            timeout.as_millis(),
            if code && shared.enforcing() {
                "code in Secured or Installation mode: code fails closed"
            } else {
                "data, or any access outside Secured mode"
            }
        ),
        file: FileRecord {
            path: fd.map_or_else(|| "(unknown)".into(), fd_path),
            size: stat.map_or(0, |s| s.key.size),
            dev: stat.map_or(0, |s| s.key.dev),
            ino: stat.map_or(0, |s| s.key.ino),
            ..FileRecord::default()
        },
        process: process_record(shared, info, ancestors),
        ringfence: None,
    }
}

/// The event for a connect or datagram the kernel refused (or would have) for a ringfence.
pub(crate) fn net_record(shared: &Shared, fencing: &Fencing, e: portcullis_fence::NetEvent) -> Record {
    let rf = fencing.describe(e.tag);
    let info = process::info(e.tgid as i32);
    let ancestors = ancestors(&info);
    let proto = if e.protocol.is_empty() { "ip".to_string() } else { e.protocol.clone() };
    let destination = format!("{proto}://{}", std::net::SocketAddr::new(e.addr, e.port));
    let profile = rf.as_ref().map_or_else(|| format!("#{}", e.tag.id), |r| r.profile.clone());
    let mode = shared.policy().target.mode().at(now());
    let verb = if e.tag.enforce { "does not allow" } else { "would not allow (report only)" };
    Record {
        bypass: shared.policy().bypass,
        time: event_time(),
        event: if e.tag.enforce { EventKind::RingfenceDeny } else { EventKind::RingfenceWouldDeny },
        access: match e.op {
            portcullis_fence::NetOp::Connect => Access::Connect,
            portcullis_fence::NetOp::Send => Access::Send,
        },
        verdict: answered(if e.tag.enforce { Response::Deny } else { Response::Allow }),
        mode: mode.name().to_owned(),
        policy: rf.as_ref().map(|r| r.policy.clone()),
        reason: format!("ringfence {profile:?} {verb} {} to {destination} (by {}; network.allow)", e.op.name(), e.comm),
        file: FileRecord { path: destination.clone(), ..FileRecord::default() },
        process: process_record(shared, info, ancestors),
        ringfence: Some(RingfenceRecord {
            profile,
            rule: "network.allow".into(),
            enforced: e.tag.enforce,
            destination: Some(destination),
        }),
    }
}

/// The event for what the kernel guard stopped (or, outside Secured mode, would have): a
/// program started from a filesystem the agent does not watch, or an executable mapping.
pub(crate) fn guard_record(shared: &Shared, e: &portcullis_guard::GuardEvent) -> Record {
    let info = process::info(e.tgid as i32);
    let ancestors = ancestors(&info);
    let mode = shared.policy().target.mode().at(now());
    let (access, what) = match e.what {
        portcullis_guard::What::ExecUnwatched => (
            Access::Exec,
            format!(
                "{} was started from a filesystem the agent does not watch (yet): a mount of another mount \
                 namespace, a new mount or a memfd",
                if e.path.is_empty() { "a program" } else { e.path.as_str() }
            ),
        ),
        portcullis_guard::What::MapExec => {
            (Access::Load, format!("an executable mapping by {}: {}", e.comm, e.why.describe()))
        }
        portcullis_guard::What::ProtectExec => {
            (Access::Load, format!("memory made executable by {}: {}", e.comm, e.why.describe()))
        }
    };
    let outcome =
        if e.enforced { "stopped before its first instruction" } else { "would have been stopped (report only)" };
    let outcome = if e.what == portcullis_guard::What::ExecUnwatched {
        outcome
    } else if e.enforced {
        "refused"
    } else {
        "would have been refused (report only)"
    };
    // The kernel's device number (major << 20 | minor) as stat gives it.
    let dev = libc::makedev((e.dev >> 20) as u32, (e.dev & 0xf_ffff) as u32);
    Record {
        bypass: shared.policy().bypass,
        time: event_time(),
        event: if e.enforced { EventKind::Deny } else { EventKind::WouldDeny },
        access,
        verdict: answered(if e.enforced { Response::Deny } else { Response::Allow }),
        mode: mode.name().to_owned(),
        policy: None,
        reason: format!("kernel guard: {what}; {outcome}"),
        file: FileRecord { path: e.path.clone(), dev, ino: e.ino, ..FileRecord::default() },
        process: process_record(shared, info, ancestors),
        ringfence: None,
    }
}

/// Write records to the spool as they come (and to the log), until every sender is gone.
/// A record the spool cannot keep (its filesystem is full, say) is counted in
/// `Stats::spool_dropped` and stays in the log; enforcement does not wait for the disk.
pub(crate) fn spool_writer(
    dropped: Arc<std::sync::atomic::AtomicU64>,
    mut spool: Spool,
    rx: Receiver<Record>,
    users: Option<Arc<crate::userbox::UserBox>>,
) {
    // Records lost since the spool last took one.
    let mut losing = 0u64;
    for record in rx {
        match serde_json::to_string(&record) {
            Ok(line) => {
                match spool.append(&line) {
                    Ok(()) if losing > 0 => {
                        tracing::warn!("event spool writable again; {losing} event(s) could not be kept meanwhile");
                        losing = 0;
                    }
                    Ok(()) => {}
                    Err(e) => {
                        if losing == 0 {
                            tracing::error!("event spool: {e}; events are in this log only until it can write again");
                        }
                        losing += 1;
                        dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                // A user's denied program: they may ask for it without being root.
                if let Some(b) = &users {
                    b.note(&record, &line);
                }
            }
            Err(e) => tracing::error!("event spool: {e}"),
        }
        if record.event.denied() {
            tracing::warn!("{}", record.summary());
        } else {
            tracing::info!("{}", record.summary());
        }
    }
    let _ = spool.sync();
}
