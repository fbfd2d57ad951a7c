//! Deciding one permission event: the agent's riskiest rules in one pure function.
//!
//! [`judge`] takes the event as classified ([`Seen`]), the policy in force and a [`Case`] to
//! ask for facts, and returns an [`Outcome`]: the answer, whether the kernel may remember it
//! (an ignore mark), what to report, which ringfence tags to put on and which refusals the
//! kernel may repeat by itself. It acts on nothing: no kernel call, no file, no counter. The
//! worker gathers the facts the judge asks for (each only when asked: most opens need none)
//! and applies the outcome ([`crate::lanes`]); the tests below ask from a table.
//!
//! The rules it holds:
//! - **Ignore marks** (the kernel answers the next open of the unchanged file itself, for
//!   every process): only for plain permits — never a deny, a Monitor or Learning outcome,
//!   a Monitor-status policy's hit or a decision that looked at the process — and, while a
//!   ringfence is in force, never for a program some ringfence could refuse to start, a file
//!   some ringfence restricts, a multiply-linked file, or a program that puts a ringfence on.
//!   Plain reads are remembered when no other opener could make the file code.
//! - **Ringfence checks**: a ringfenced process's open of a restricted path (file rules), its
//!   program starts (child rules; its own re-exec is the same application), and the opens of
//!   code it loads (file rules); execs of a loader run directly are not program starts.

use crate::fencing::Ringfence;
use crate::identity::Unreadable;
use crate::shape::Shape;
use crate::state::{CODE_MASK, PolicyState};
use portcullis_events::{Access, EventKind};
use portcullis_fanotify::{Mask, Response};
use portcullis_policy::{Basis, Decision, FenceDenial, FileFacts, Mode, ProcessFacts, Timestamp, Verdict};
use std::sync::Arc;

/// What the judge may ask about one event; each fact costs system calls, so the worker
/// gathers it only when asked (and at most once).
pub(crate) trait Case {
    /// The file's path, as the kernel resolved it.
    fn path(&mut self) -> String;
    /// The ringfence of the process behind the event, if it is in a ringfenced tree.
    fn ringfence(&mut self) -> Option<Ringfence>;
    /// Whether the held open asks for writing (unknown counts as writing).
    fn opens_for_writing(&mut self) -> bool;
    /// The file's facts (hashed once per file version), or why they could not be had.
    fn facts(&mut self) -> Result<Arc<FileFacts>, Unreadable>;
    /// What the policy may know about the process behind the event.
    fn process(&mut self) -> ProcessFacts;
    /// Whether the file is the process's own executable (a re-exec).
    fn is_own_executable(&mut self) -> bool;
    /// Whether a file with this content is a known shell or interpreter.
    fn is_interpreter(&mut self, sha256: &[u8; 32]) -> bool;
    /// The application an Installation window captured a file with this content into, as
    /// the agent's record stood for a policy loaded from bundle `as_of`.
    fn captured(&mut self, sha256: &[u8; 32], as_of: i64) -> Option<String>;
    /// The installer writing the file in the Installation window open now (its close not
    /// read yet), if one is.
    fn installer_writing(&mut self) -> Option<String>;
}

/// One regular file's event, classified.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seen {
    /// What the process does with it.
    pub(crate) access: Access,
    /// The file's shape, from its first bytes.
    pub(crate) shape: Shape,
    /// Its hard links.
    pub(crate) nlink: u64,
}

/// What the judge concluded; the worker applies it.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The kernel's answer.
    pub(crate) response: Response,
    /// An ignore mark for the file (the kernel then answers this file alone).
    pub(crate) ignore: Option<Mask>,
    /// The policy's decision, when it was asked (its policy's hit is counted).
    pub(crate) decision: Option<Decision>,
    /// Put the ringfence the decision attaches on, before answering.
    pub(crate) tag: Option<TagRequest>,
    /// The ringfence (its id) that refuses every open of this file by its tree: the kernel
    /// may repeat the refusal itself where it can (BPF LSM).
    pub(crate) remember_denied: Option<u32>,
    /// What to record.
    pub(crate) report: Option<Report>,
    /// A file an installer wrote, run before its close was read: keep its capture.
    pub(crate) capture: Option<Capture>,
}

/// A capture for the agent's record ([`crate::install::Captures`]).
#[derive(Debug)]
pub(crate) struct Capture {
    /// The file as judged.
    pub(crate) facts: FileFacts,
    /// The window's application.
    pub(crate) application: String,
    /// The installer that wrote it.
    pub(crate) installer: String,
}

/// Where a ringfence goes on when a permit with ringfence lets a program start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TagRequest {
    /// On the executable, for the kernel's exec hook (an exec, not a loader's load).
    pub(crate) executable: bool,
    /// On the process making the exec (scripts, filesystems whose device numbers differ):
    /// unless it is already in a ringfenced tree, which keeps its tag.
    pub(crate) process: bool,
}

/// What to record of an event.
#[derive(Debug)]
pub(crate) struct Report {
    /// What happened.
    pub(crate) event: EventKind,
    /// The file's path.
    pub(crate) path: String,
    /// Its facts, when they were read.
    pub(crate) facts: Option<Arc<FileFacts>>,
    /// Why, when the decision does not say (overload, ringfence).
    pub(crate) reason: Option<String>,
    /// The ringfence that refused, and its rule.
    pub(crate) fence: Option<(Ringfence, FenceDenial)>,
}

impl Outcome {
    /// Answer with `response` and nothing else.
    pub(crate) fn answer(response: Response) -> Outcome {
        Outcome {
            response,
            ignore: None,
            decision: None,
            tag: None,
            remember_denied: None,
            report: None,
            capture: None,
        }
    }
}

/// A directory, device or pipe holds no code: allowed, and the kernel stops asking.
pub(crate) fn not_a_regular_file() -> Outcome {
    Outcome { ignore: Some(CODE_MASK), ..Outcome::answer(Response::Allow) }
}

/// Decide one event on a regular file. `overload` is the answer when the file cannot be
/// judged (its facts cannot be read).
pub(crate) fn judge(
    policy: &PolicyState,
    seen: Seen,
    case: &mut impl Case,
    now: Timestamp,
    overload: Response,
) -> Outcome {
    if !seen.access.is_code() {
        return judge_read(policy, seen, case);
    }
    let fence = if policy.fencing() { case.ringfence() } else { None };
    let path = case.path();
    let facts = match case.facts() {
        Ok(f) => f,
        Err(reason) => {
            return Outcome {
                report: Some(Report {
                    event: EventKind::Overload,
                    path,
                    facts: None,
                    reason: Some(portcullis_policy::with_causes(&reason)),
                    fence: None,
                }),
                ..Outcome::answer(overload)
            };
        }
    };
    let mut file = (*facts).clone();
    file.path.clone_from(&path);
    let process = case.process();
    file.captured = case.captured(&file.sha256, policy.bundle_version);
    let mut decision = policy.engine.decide(&file, &process, &policy.target, now);
    // Written by an installer and run before the window's watcher read its close.
    let mut capture = None;
    if let Basis::Mode { mode: Mode::Installation { capture_into, .. }, captured: None, .. } = &decision.basis
        && decision.verdict == Verdict::Deny
        && let Some(installer) = case.installer_writing()
    {
        let application = capture_into.clone();
        file.captured = Some(application.clone());
        decision = policy.engine.decide(&file, &process, &policy.target, now);
        capture = Some(Capture { facts: file.clone(), application, installer });
    }
    let allow = decision.verdict == Verdict::Allow;
    // A program started directly, or through a loader run directly (`ld.so ./program`).
    let elf = seen.shape.elf();
    let starts_program = match seen.access {
        Access::Exec => !elf.is_some_and(|e| e.can_be_loader()),
        Access::Load => elf.is_some_and(|e| !e.is_shared_object()),
        _ => false,
    };
    if allow
        && let Some(rf) = &fence
        && let Some(profile) = policy.engine.ringfence(&rf.profile)
    {
        let denial = if starts_program {
            // Its own re-exec is the same application.
            if case.is_own_executable() {
                None
            } else {
                policy.child_denial(profile, &path, &file, &process, case.is_interpreter(&file.sha256))
            }
        } else if seen.access != Access::Exec {
            profile.check_open(&path, false)
        } else {
            None
        };
        if let Some(denial) = denial {
            let decision = Some(decision);
            return Outcome { decision, ..refused(rf.clone(), denial, !starts_program, path, Some(facts)) };
        }
    }
    let tag = (allow && starts_program && decision.fence().is_some())
        .then_some(TagRequest { executable: seen.access == Access::Exec, process: fence.is_none() });
    let event = if !allow {
        Some(EventKind::Deny)
    } else if decision.would_deny() {
        Some(EventKind::WouldDeny)
    } else if decision.is_learning_candidate() || decision.capture_into().is_some() {
        Some(EventKind::Candidate)
    } else {
        None
    };
    // Only a plain permit is handed to the kernel: denies must be asked again (the kernel
    // drops nothing for them), and Monitor/Learning outcomes must be recorded every time.
    let plain_permit = event.is_none() && decision.monitor_hits.is_empty() && !decision.depends_on_process;
    // While ringfences are in force, a program that some ringfenced tree may not start must
    // keep reaching the agent (an ignore mark answers every process alike), as must files a
    // ringfence restricts.
    let ignore = (plain_permit
        && (!policy.fencing()
            || (decision.fence().is_none()
                && seen.nlink <= 1
                && !policy.restricts(&path)
                && (elf.is_some_and(|e| e.is_shared_object()) || {
                    let interpreter = case.is_interpreter(&file.sha256);
                    !policy.some_fence_could_refuse_start(&path, &file, &process, interpreter)
                }))))
    .then_some(CODE_MASK);
    Outcome {
        response: if allow { Response::Allow } else { Response::Deny },
        ignore,
        tag,
        remember_denied: None,
        report: event.map(|event| Report { event, path, facts: Some(facts), reason: None, fence: None }),
        decision: Some(decision),
        capture,
    }
}

/// An open that is not code: allowed, unless a ringfence keeps its tree from the path.
fn judge_read(policy: &PolicyState, seen: Seen, case: &mut impl Case) -> Outcome {
    let mut cacheable = crate::classify::read_is_process_independent(seen.shape, policy.script_control);
    if policy.fencing() {
        let path = case.path();
        let restricted = policy.restricts(&path);
        if restricted
            && let Some(rf) = case.ringfence()
            && let Some(profile) = policy.engine.ringfence(&rf.profile)
            && let Some(denial) = profile.check_open(&path, case.opens_for_writing())
        {
            let any_open = profile.check_open(&path, false).is_some();
            return refused(rf, denial, any_open, path, None);
        }
        // A hard link can put a restricted file under an open path.
        cacheable &= !restricted && seen.nlink <= 1;
    }
    Outcome { ignore: cacheable.then_some(Mask::OPEN_PERM), ..Outcome::answer(Response::Allow) }
}

/// A ringfence refused an open or a program start: deny it (or, report-only, allow it) and
/// say which profile and rule. `any_open` when every open of the file by the tree is refused
/// (not only writing, not only starting it), so the kernel may refuse repeats itself.
fn refused(rf: Ringfence, denial: FenceDenial, any_open: bool, path: String, facts: Option<Arc<FileFacts>>) -> Outcome {
    let enforce = rf.tag.enforce;
    Outcome {
        response: if enforce { Response::Deny } else { Response::Allow },
        ignore: None,
        decision: None,
        tag: None,
        remember_denied: (enforce && any_open).then_some(rf.tag.id),
        report: Some(Report {
            event: if enforce { EventKind::RingfenceDeny } else { EventKind::RingfenceWouldDeny },
            path,
            facts,
            reason: Some(denial.reason.clone()),
            fence: Some((rf, denial)),
        }),
        capture: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::ElfShape;
    use portcullis_fence::Tag;
    use portcullis_policy::{FileKind, Os};

    const LIB: Shape = Shape::Elf(ElfShape { dynamic: true, has_interpreter: true, pie: false });
    const PROGRAM: Shape = Shape::Elf(ElfShape { dynamic: true, has_interpreter: true, pie: true });
    const LOADER: Shape = Shape::Elf(ElfShape { dynamic: true, has_interpreter: false, pie: false });
    const BASH: [u8; 32] = [0xba; 32];

    fn policy(toml: &str) -> PolicyState {
        let engine = portcullis_policy_file::compile(toml, portcullis_policy_file::Format::Toml).unwrap();
        let target = engine.target(None, Os::Linux).unwrap();
        let script_control = engine.policy_set().organization.script_control;
        let fences = engine.ringfences_in_force().into_iter().cloned().collect();
        PolicyState { engine, target, script_control, fences, bypass: None, bundle_version: 0 }
    }

    /// A case answered from fields; it notes what the judge asked.
    struct Fake {
        path: &'static str,
        sha256: [u8; 32],
        fenced: Option<Ringfence>,
        writes: bool,
        facts_fail: bool,
        parent: Option<&'static str>,
        own_exe: bool,
        captured: Option<&'static str>,
        written_by_installer: bool,
        asked: Vec<&'static str>,
    }

    impl Fake {
        fn new(path: &'static str) -> Fake {
            Fake {
                path,
                sha256: [7; 32],
                fenced: None,
                writes: false,
                facts_fail: false,
                parent: None,
                own_exe: false,
                captured: None,
                written_by_installer: false,
                asked: Vec::new(),
            }
        }
        fn fenced(mut self, enforce: bool) -> Fake {
            let tag = Tag { id: 5, enforce };
            self.fenced = Some(Ringfence { tag, policy: "Permit app, ringfenced".into(), profile: "App".into() });
            self
        }
    }

    impl Case for Fake {
        fn path(&mut self) -> String {
            self.asked.push("path");
            self.path.into()
        }
        fn ringfence(&mut self) -> Option<Ringfence> {
            self.asked.push("ringfence");
            self.fenced.clone()
        }
        fn opens_for_writing(&mut self) -> bool {
            self.asked.push("writes");
            self.writes
        }
        fn facts(&mut self) -> Result<Arc<FileFacts>, Unreadable> {
            self.asked.push("facts");
            if self.facts_fail {
                return Err(Unreadable { path: self.path.into(), error: Arc::new(std::io::Error::other("gone")) });
            }
            let kind = if self.path.ends_with(".so") { FileKind::Library } else { FileKind::Executable };
            Ok(Arc::new(FileFacts { path: self.path.into(), sha256: self.sha256, kind, ..FileFacts::default() }))
        }
        fn process(&mut self) -> ProcessFacts {
            self.asked.push("process");
            ProcessFacts { parent_path: self.parent.map(str::to_owned), user: Some("root".into()) }
        }
        fn is_own_executable(&mut self) -> bool {
            self.asked.push("own-exe");
            self.own_exe
        }
        fn is_interpreter(&mut self, sha256: &[u8; 32]) -> bool {
            self.asked.push("interpreter");
            *sha256 == BASH
        }
        fn captured(&mut self, _sha256: &[u8; 32], _as_of: i64) -> Option<String> {
            self.captured.map(str::to_owned)
        }
        fn installer_writing(&mut self) -> Option<String> {
            self.asked.push("capture-run");
            self.written_by_installer.then(|| "/root/install.sh".to_owned())
        }
    }

    const INSTALLING: &str = r#"
[organization]
mode = "installation"
until = "2100-01-01"
capture_into = "Vendor tools"
[[applications]]
name = "Tools"
rules = [{ path = "/opt/tools/**" }]
[[policies]]
name = "Permit tools"
position = 1
applications = ["Tools"]
action = "permit"
"#;

    #[test]
    fn installation_mode_enforces_all_but_what_installers_wrote() {
        let p = policy(INSTALLING);
        // A policy still decides first, and is remembered by the kernel.
        let out = run(&p, seen(Access::Exec, PROGRAM), &mut Fake::new("/opt/tools/make"));
        assert_eq!((out.response, out.ignore), (Response::Allow, Some(CODE_MASK)));
        // Anything else is denied, as in Secured mode, and says why.
        let mut dropped = Fake::new("/tmp/dropper");
        let out = run(&p, seen(Access::Exec, PROGRAM), &mut dropped);
        assert_eq!(out.response, Response::Deny);
        assert!(dropped.asked.contains(&"capture-run"));
        let why = out.decision.as_ref().unwrap().explain();
        assert!(why.contains("Installation mode") && why.contains("install.sh"), "{why}");
        // What an installer wrote and runs at once is captured, allowed, reported, never
        // remembered by the kernel (the agent's record may be replaced by the server's).
        let mut written = Fake::new("/opt/vendor/bin/tool");
        written.written_by_installer = true;
        let out = run(&p, seen(Access::Exec, PROGRAM), &mut written);
        assert_eq!((out.response, out.ignore), (Response::Allow, None));
        assert_eq!(out.decision.as_ref().unwrap().capture_into(), Some("Vendor tools"));
        assert_eq!(out.report.as_ref().map(|r| r.event), Some(EventKind::Candidate));
        let capture = out.capture.expect("the lane keeps it");
        assert_eq!((capture.application.as_str(), capture.installer.as_str()), ("Vendor tools", "/root/install.sh"));
        assert_eq!(capture.facts.path, "/opt/vendor/bin/tool");
        // Captured before: allowed without asking again.
        let mut captured = Fake::new("/opt/vendor/lib/libtool.so");
        captured.captured = Some("Vendor tools");
        let out = run(&p, seen(Access::Load, LIB), &mut captured);
        assert_eq!(out.response, Response::Allow);
        assert!(!captured.asked.contains(&"capture-run"));
    }

    #[test]
    fn captures_stay_allowed_in_secured_mode_and_change_nothing_in_monitor() {
        let secured = policy(PERMIT_TOOLS);
        let mut captured = Fake::new("/opt/vendor/bin/tool");
        captured.captured = Some("Vendor tools");
        let out = run(&secured, seen(Access::Exec, PROGRAM), &mut captured);
        assert_eq!((out.response, out.ignore), (Response::Allow, None));
        assert!(out.decision.unwrap().explain().contains("captured it into \"Vendor tools\""));
        // Secured mode captures nothing new.
        let mut written = Fake::new("/opt/vendor/bin/other");
        written.written_by_installer = true;
        assert_eq!(run(&secured, seen(Access::Exec, PROGRAM), &mut written).response, Response::Deny);
        assert!(!written.asked.contains(&"capture-run"));
        let monitor = policy(&PERMIT_TOOLS.replace("\"secured\"", "\"monitor\""));
        let mut captured = Fake::new("/opt/vendor/bin/tool");
        captured.captured = Some("Vendor tools");
        let out = run(&monitor, seen(Access::Exec, PROGRAM), &mut captured);
        assert_eq!(out.report.map(|r| r.event), Some(EventKind::WouldDeny));
    }

    fn seen(access: Access, shape: Shape) -> Seen {
        Seen { access, shape, nlink: 1 }
    }

    fn run(p: &PolicyState, s: Seen, case: &mut Fake) -> Outcome {
        judge(p, s, case, Timestamp(1_800_000_000), Response::Allow)
    }

    const PERMIT_TOOLS: &str = r#"
[organization]
mode = "secured"
[[applications]]
name = "Tools"
rules = [{ path = "/opt/tools/**" }]
[[policies]]
name = "Permit tools"
position = 1
applications = ["Tools"]
action = "permit"
"#;

    /// The ignore-mark rule without ringfences: only plain permits, and reads no other
    /// opener could make code.
    #[test]
    fn only_plain_permits_and_process_independent_reads_become_ignore_marks() {
        let secured = policy(PERMIT_TOOLS);
        let monitor = policy(&PERMIT_TOOLS.replace("\"secured\"", "\"monitor\""));
        let by_parent = policy(&PERMIT_TOOLS.replace(
            "rules = [{ path = \"/opt/tools/**\" }]",
            "rules = [{ path = \"/opt/tools/**\", parent_process = \"/usr/bin/make\" }]",
        ));
        let watched = policy(&format!(
            "{PERMIT_TOOLS}\n[[policies]]\nname = \"Watch tools\"\nposition = 0\napplications = [\"Tools\"]\naction = \"deny\"\nstatus = \"monitor\"\n"
        ));
        let script_control =
            policy(&PERMIT_TOOLS.replace("mode = \"secured\"", "mode = \"secured\"\nscript_control = true"));
        // (policy, access, shape, path, response, ignore, event)
        type Row<'a> = (&'a PolicyState, Access, Shape, &'static str, Response, Option<Mask>, Option<EventKind>);
        let table: Vec<Row> = vec![
            (&secured, Access::Exec, PROGRAM, "/opt/tools/make", Response::Allow, Some(CODE_MASK), None),
            (&secured, Access::Load, LIB, "/opt/tools/lib.so", Response::Allow, Some(CODE_MASK), None),
            (&secured, Access::Exec, PROGRAM, "/tmp/payload", Response::Deny, None, Some(EventKind::Deny)),
            (&monitor, Access::Exec, PROGRAM, "/tmp/payload", Response::Allow, None, Some(EventKind::WouldDeny)),
            (&by_parent, Access::Exec, PROGRAM, "/opt/tools/make", Response::Deny, None, Some(EventKind::Deny)),
            (&watched, Access::Exec, PROGRAM, "/opt/tools/make", Response::Allow, None, Some(EventKind::WouldDeny)),
            (&secured, Access::Read, Shape::Other, "/etc/hosts", Response::Allow, Some(Mask::OPEN_PERM), None),
            (&secured, Access::Read, PROGRAM, "/opt/tools/make", Response::Allow, None, None),
            (&script_control, Access::Read, Shape::Other, "/etc/hosts", Response::Allow, None, None),
        ];
        for (i, (p, access, shape, path, response, ignore, event)) in table.into_iter().enumerate() {
            let mut case = Fake::new(path);
            let o = run(p, seen(access, shape), &mut case);
            assert_eq!(o.response, response, "row {i}: {path}");
            assert_eq!(o.ignore, ignore, "row {i}: {path}");
            assert_eq!(o.report.as_ref().map(|r| r.event), event, "row {i}: {path}");
            assert!(o.tag.is_none() && o.remember_denied.is_none(), "row {i}");
            if !access.is_code() {
                assert!(case.asked.is_empty(), "row {i}: a read without ringfences asks nothing: {:?}", case.asked);
            }
        }
        // A permit that looked at the process is never remembered for every process.
        let mut case = Fake::new("/opt/tools/make");
        case.parent = Some("/usr/bin/make");
        let o = run(&by_parent, seen(Access::Exec, PROGRAM), &mut case);
        assert_eq!((o.response, o.ignore), (Response::Allow, None));
    }

    const FENCED_APP: &str = r#"
[organization]
mode = "secured"
[[applications]]
name = "App"
rules = [{ path = "/opt/app/**" }]
[[applications]]
name = "Tools"
rules = [{ path = "/opt/tools/**" }, { path = "/usr/bin/*" }]
[[applications]]
name = "Make"
rules = [{ path = "/opt/tools/make" }]
[[policies]]
name = "Permit app, ringfenced"
position = 1
applications = ["App"]
action = "permit-ringfence"
ringfence = "App"
[[policies]]
name = "Permit tools"
position = 2
applications = ["Tools"]
action = "permit"
[[ringfences]]
name = "App"
[ringfences.files]
protected = ["/home/**"]
protected_access = "none"
rules = [{ path = "/srv/shared/**", access = "read" }]
[ringfences.children]
applications = ["Make"]
others = "deny"
"#;

    /// The ignore-mark rule while a ringfence is in force: processes that are not ringfenced
    /// keep ignore marks for libraries and for programs no ringfence could refuse; the rest
    /// keeps asking.
    #[test]
    fn while_a_ringfence_is_in_force_only_what_no_ringfence_could_refuse_becomes_an_ignore_mark() {
        let deny_others = policy(FENCED_APP);
        let no_shells = policy(&FENCED_APP.replace("others = \"deny\"", "others = \"no-shells\""));
        // (policy, access, shape, path, nlink, sha256, ignore)
        type Row<'a> = (&'a PolicyState, Access, Shape, &'static str, u64, [u8; 32], Option<Mask>);
        let table: Vec<Row> = vec![
            // A library never starts: remembered.
            (&deny_others, Access::Load, LIB, "/opt/tools/lib.so", 1, [7; 32], Some(CODE_MASK)),
            // A program the ringfence lists: no ringfence refuses it.
            (&deny_others, Access::Exec, PROGRAM, "/opt/tools/make", 1, [7; 32], Some(CODE_MASK)),
            // others = deny could refuse every other program.
            (&deny_others, Access::Exec, PROGRAM, "/usr/bin/true", 1, [7; 32], None),
            // no-shells: shells by name or by content keep asking, other programs do not.
            (&no_shells, Access::Exec, PROGRAM, "/usr/bin/bash", 1, BASH, None),
            (&no_shells, Access::Exec, PROGRAM, "/usr/bin/renamed-shell", 1, BASH, None),
            (&no_shells, Access::Exec, PROGRAM, "/usr/bin/true", 1, [7; 32], Some(CODE_MASK)),
            // Two names for one file: the other may be restricted.
            (&no_shells, Access::Exec, PROGRAM, "/usr/bin/true", 2, [7; 32], None),
            // A restricted path keeps asking; an open one does not.
            (&no_shells, Access::Read, Shape::Other, "/home/alice/notes", 1, [7; 32], None),
            (&no_shells, Access::Read, Shape::Other, "/etc/hosts", 1, [7; 32], Some(Mask::OPEN_PERM)),
            // The program that puts the ringfence on must be seen at every exec.
            (&deny_others, Access::Exec, PROGRAM, "/opt/app/phone", 1, [7; 32], None),
        ];
        for (i, (p, access, shape, path, nlink, sha256, ignore)) in table.into_iter().enumerate() {
            let mut case = Fake::new(path);
            case.sha256 = sha256;
            let o = run(p, Seen { access, shape, nlink }, &mut case);
            assert_eq!(o.response, Response::Allow, "row {i}: {path}");
            assert_eq!(o.ignore, ignore, "row {i}: {path}");
        }
    }

    /// Which ringfence checks apply to a ringfenced process, and what a refusal says.
    #[test]
    fn a_ringfenced_process_is_held_to_its_file_and_child_rules() {
        // Everything permitted by policy, so that what refuses is the ringfence.
        let p = policy(&FENCED_APP.replace(
            "rules = [{ path = \"/opt/tools/**\" }, { path = \"/usr/bin/*\" }]",
            "rules = [{ path = \"/opt/tools/**\" }, { path = \"/usr/bin/*\" }, { path = \"/home/**\" }]",
        ));
        // (access, shape, path, writes, own exe, response, rule, kernel may repeat)
        type Row = (Access, Shape, &'static str, bool, bool, Response, Option<&'static str>, Option<u32>);
        let table: Vec<Row> = vec![
            (
                Access::Read,
                Shape::Other,
                "/home/alice/.ssh/id_rsa",
                false,
                false,
                Response::Deny,
                Some("files.protected"),
                Some(5),
            ),
            (Access::Read, Shape::Other, "/srv/shared/report.txt", false, false, Response::Allow, None, None),
            (
                Access::Read,
                Shape::Other,
                "/srv/shared/report.txt",
                true,
                false,
                Response::Deny,
                Some("files.rules[1]"),
                None,
            ),
            (Access::Read, Shape::Other, "/etc/hosts", true, false, Response::Allow, None, None),
            // Program starts: a listed application, others, and its own re-exec.
            (Access::Exec, PROGRAM, "/opt/tools/make", false, false, Response::Allow, None, None),
            (Access::Exec, PROGRAM, "/usr/bin/bash", false, false, Response::Deny, Some("children.others"), None),
            (Access::Exec, PROGRAM, "/opt/app/phone", false, true, Response::Allow, None, None),
            (Access::Exec, PROGRAM, "/opt/app/helper", false, false, Response::Deny, Some("children.others"), None),
            // A program loaded by ld.so run directly starts too; a loader run directly does not.
            (Access::Load, PROGRAM, "/opt/app/helper", false, false, Response::Deny, Some("children.others"), None),
            (Access::Exec, LOADER, "/opt/app/ld.so", false, false, Response::Allow, None, None),
            // Code loaded from a protected path.
            (Access::Load, LIB, "/home/alice/evil.so", false, false, Response::Deny, Some("files.protected"), Some(5)),
        ];
        for (i, (access, shape, path, writes, own_exe, response, rule, remember)) in table.into_iter().enumerate() {
            let mut case = Fake::new(path).fenced(true);
            case.writes = writes;
            case.own_exe = own_exe;
            let o = run(&p, seen(access, shape), &mut case);
            let why = o.report.as_ref().and_then(|r| r.reason.clone());
            assert_eq!(o.response, response, "row {i}: {path} {why:?}");
            let fenced_rule = o.report.as_ref().and_then(|r| r.fence.as_ref()).map(|(_, d)| d.rule.clone());
            match rule {
                Some(r) => {
                    assert!(fenced_rule.as_deref().is_some_and(|f| f.starts_with(r)), "row {i}: {fenced_rule:?}")
                }
                None => assert!(fenced_rule.is_none(), "row {i}: {fenced_rule:?}"),
            }
            assert_eq!(o.remember_denied, remember, "row {i}: {path}");
            if rule.is_some() {
                assert_eq!(o.report.as_ref().unwrap().event, EventKind::RingfenceDeny, "row {i}");
                assert!(o.ignore.is_none() && o.tag.is_none(), "row {i}: a refusal is never remembered or tagged");
            }
        }
        // Report only (a Monitor-status permit with ringfence tags its tree so): the same
        // refusal is allowed and reported, and never repeated by the kernel.
        let mut case = Fake::new("/opt/app/helper").fenced(false);
        let o = run(&p, seen(Access::Exec, PROGRAM), &mut case);
        assert_eq!((o.response, o.remember_denied), (Response::Allow, None));
        assert_eq!(o.report.unwrap().event, EventKind::RingfenceWouldDeny);
        // Not ringfenced: the same start is the policy's business only.
        let o = run(&p, seen(Access::Exec, PROGRAM), &mut Fake::new("/usr/bin/bash"));
        assert_eq!((o.response, o.report.is_none()), (Response::Allow, true));
    }

    /// Where a permit with ringfence puts its tag on, and that the opener's tag is never
    /// looked up when no ringfence is in force.
    #[test]
    fn a_permit_with_ringfence_tags_the_executable_and_the_process_that_starts_it() {
        let p = policy(FENCED_APP);
        let o = run(&p, seen(Access::Exec, PROGRAM), &mut Fake::new("/opt/app/phone"));
        assert_eq!(o.tag, Some(TagRequest { executable: true, process: true }));
        assert_eq!(o.decision.as_ref().and_then(|d| d.fence()).map(|f| f.profile.to_owned()).as_deref(), Some("App"));
        // Its own re-exec, already in the tree: the executable is tagged, the process keeps its tag.
        let mut case = Fake::new("/opt/app/phone").fenced(true);
        case.own_exe = true;
        let o = run(&p, seen(Access::Exec, PROGRAM), &mut case);
        assert_eq!(o.tag, Some(TagRequest { executable: true, process: false }));
        // Started by ld.so run directly: no exec of it for the kernel's hook to see.
        let o = run(&p, seen(Access::Load, PROGRAM), &mut Fake::new("/opt/app/phone"));
        assert_eq!(o.tag, Some(TagRequest { executable: false, process: true }));
        // No ringfence in force: the opener's tag is never looked up.
        let mut case = Fake::new("/opt/tools/make");
        run(&policy(PERMIT_TOOLS), seen(Access::Exec, PROGRAM), &mut case);
        assert!(!case.asked.contains(&"ringfence"), "{:?}", case.asked);
    }

    #[test]
    fn a_file_that_cannot_be_read_gets_the_overload_verdict_and_a_report() {
        let p = policy(PERMIT_TOOLS);
        let mut case = Fake::new("/opt/tools/make");
        case.facts_fail = true;
        let o = judge(&p, seen(Access::Exec, PROGRAM), &mut case, Timestamp(0), Response::Deny);
        assert_eq!((o.response, o.ignore), (Response::Deny, None));
        let report = o.report.unwrap();
        assert_eq!(
            (report.event, report.reason.as_deref()),
            (EventKind::Overload, Some("cannot read /opt/tools/make: gone"))
        );
        assert_eq!(not_a_regular_file().ignore, Some(CODE_MASK));
    }
}
