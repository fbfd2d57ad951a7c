//! How file facts are shown: JSON records for programs, table cells for people, and the
//! engine's view of a file.

use portcullis_inspect::{Facts, Trust, hex};
use serde_json::{Map, Value, json};

fn opt<T: Into<Value>>(v: Option<T>) -> Value {
    v.map_or(Value::Null, Into::into)
}

fn version_text(v: Option<[u16; 4]>) -> Option<String> {
    v.map(|[a, b, c, d]| format!("{a}.{b}.{c}.{d}"))
}

/// One JSON object for `scan --json` (inner files of containers get their own records).
pub fn scan_json(f: &Facts) -> Value {
    let id = f.identity();
    let primary = f.primary_signature();
    let mut m = Map::new();
    m.insert("path".into(), json!(f.path));
    m.insert("size".into(), json!(f.size));
    m.insert("sha256".into(), json!(hex(&f.hashes.sha256)));
    if let Some(h) = f.hashes.sha1 {
        m.insert("sha1".into(), json!(hex(&h)));
    }
    if let Some(h) = f.hashes.md5 {
        m.insert("md5".into(), json!(hex(&h)));
    }
    m.insert("format".into(), json!(f.format.name()));
    m.insert("parse_error".into(), opt(f.parse_error.clone()));
    m.insert("container".into(), opt(f.container.clone()));
    if f.install_path.is_some() {
        m.insert("install_path".into(), opt(f.install_path.clone()));
    }
    if let Some(pe) = &f.pe {
        let v = &pe.version_strings;
        m.insert("machine".into(), json!(portcullis_inspect::machine_name(pe.machine)));
        m.insert("original_filename".into(), opt(v.original_filename.clone()));
        m.insert("internal_name".into(), opt(v.internal_name.clone()));
        m.insert("file_description".into(), opt(v.file_description.clone()));
        m.insert("product_version".into(), opt(version_text(pe.product_version).or_else(|| v.product_version.clone())));
    }
    if f.pe.is_some() || f.msi.is_some() {
        m.insert("product_name".into(), opt(id.product_name));
        m.insert("company_name".into(), opt(id.company_name));
        m.insert("file_version".into(), opt(id.file_version));
    }
    if let Some(msi) = &f.msi {
        m.insert("product_code".into(), opt(msi.product_code.clone()));
    }
    if let Some(a) = &f.authenticode {
        m.insert("authenticode_sha256".into(), json!(hex(&a.sha256)));
        m.insert("authenticode_sha1".into(), json!(hex(&a.sha1)));
        m.insert("signer_subject".into(), opt(primary.and_then(|s| s.signer.as_ref()).map(|c| c.subject.clone())));
        m.insert("signer_issuer".into(), opt(primary.and_then(|s| s.signer.as_ref()).map(|c| c.issuer.clone())));
        m.insert("signer_serial".into(), opt(primary.and_then(|s| s.signer.as_ref()).map(|c| c.serial.clone())));
        m.insert("signer_cert_sha256".into(), opt(primary.and_then(|s| s.signer.as_ref()).map(|c| hex(&c.sha256))));
        m.insert("signature_valid".into(), opt(primary.map(|s| s.intact())));
        m.insert("signature_trusted".into(), opt(primary.and_then(|s| s.trusted.as_ref()).map(|t| t.is_trusted())));
        m.insert("signatures".into(), Value::Array(f.signatures.iter().map(signature_json).collect()));
    }
    if let Some(e) = &f.elf {
        m.insert(
            "elf".into(),
            json!({
                "type": format!("{:?}", e.elf_type).to_lowercase(),
                "machine": e.machine, "class": if e.is_64 { 64 } else { 32 },
                "interpreter": e.interpreter, "build_id": e.build_id, "static": e.is_static,
            }),
        );
    }
    if let Some(mo) = &f.macho {
        m.insert(
            "macho".into(),
            json!({
                "universal": mo.universal, "signed": mo.signed(),
                "arches": mo.arches.iter().map(|a| json!({"arch": a.arch, "signed": a.signed, "filetype": a.filetype})).collect::<Vec<_>>(),
            }),
        );
    }
    if let Some(s) = &f.script {
        m.insert(
            "script".into(),
            json!({"interpreter": s.interpreter, "program": s.program, "arguments": s.arguments}),
        );
    }
    if let Some(c) = &f.cab {
        m.insert("cab".into(), json!({"files": c.file_count, "compression": c.compression}));
    }
    m.insert(
        "anomalies".into(),
        Value::Array(f.anomalies.iter().map(|a| json!({"code": a.code, "message": a.message})).collect()),
    );
    Value::Object(m)
}

fn signature_json(s: &portcullis_inspect::Signature) -> Value {
    json!({
        "index": s.index,
        "digest_algorithm": s.digest_algorithm.map(|d| d.name()),
        "digest_matches": s.digest_matches,
        "signature_valid": s.signature_valid,
        "signer_subject": s.signer.as_ref().map(|c| c.subject.clone()),
        "signer_issuer": s.signer.as_ref().map(|c| c.issuer.clone()),
        "signer_serial": s.signer.as_ref().map(|c| c.serial.clone()),
        "signer_cert_sha256": s.signer.as_ref().map(|c| hex(&c.sha256)),
        "error": s.error,
        "timestamp": s.timestamp.as_ref().map(|t| json!({
            "kind": match t.kind { portcullis_inspect::TimestampKind::Rfc3161 => "rfc3161", portcullis_inspect::TimestampKind::Legacy => "legacy" },
            "time": portcullis_inspect::format_time(t.time),
            "valid": t.valid,
            "signer_subject": t.signer.as_ref().map(|c| c.subject.clone()),
            "error": t.error,
            "trusted": t.trusted.as_ref().map(|t| t.is_trusted()),
        })),
        "trusted": s.trusted.as_ref().map(|t| t.is_trusted()),
        "trust_error": s.trusted.as_ref().and_then(|t| t.refusal()),
        "chain": s.trusted.as_ref().and_then(|t| t.chain()),
        "judged_at": s.judged_at.map(portcullis_inspect::format_time),
    })
}

/// A short description for the table's last column.
pub fn details(f: &Facts) -> String {
    let mut parts = Vec::new();
    let id = f.identity();
    if let Some(o) = id.original_filename {
        parts.push(format!("OriginalFilename {o}"));
    }
    if let Some(p) = id.product_name {
        parts.push(p);
    }
    if let Some(c) = id.company_name {
        parts.push(c);
    }
    if let Some(v) = id.file_version {
        parts.push(format!("v{v}"));
    }
    if let Some(s) = f.primary_signature() {
        let who = s.signer.as_ref().map_or("unknown signer".to_string(), |c| c.subject.clone());
        let state = match (&s.trusted, s.intact()) {
            (_, false) => "INVALID".to_string(),
            (Some(Trust::Chained(_)), true) => "verified".to_string(),
            (Some(Trust::Untrusted(e)), true) => format!("untrusted: {e}"),
            (None, true) => "intact".to_string(),
        };
        let nested =
            if f.signatures.len() > 1 { format!(" +{} nested", f.signatures.len() - 1) } else { String::new() };
        parts.push(format!("signed by {who} ({state}){nested}"));
    } else if f.authenticode.is_some() {
        parts.push("unsigned".into());
    }
    if let Some(e) = &f.elf {
        parts.push(
            e.interpreter
                .as_ref()
                .map_or(if e.is_static { "static".to_string() } else { "no interpreter".to_string() }, |i| {
                    format!("interp {i}")
                }),
        );
    }
    if let Some(s) = &f.script {
        parts.push(format!("runs {}", s.program));
    }
    if let Some(m) = &f.macho {
        parts.push(format!(
            "{} {}",
            m.arches.iter().map(|a| a.arch.as_str()).collect::<Vec<_>>().join("+"),
            if m.signed() { "signed" } else { "unsigned" }
        ));
    }
    if !f.contents.is_empty() {
        parts.push(format!("{} file(s) inside", f.contents.len()));
    }
    for a in &f.anomalies {
        parts.push(format!("⚠ {}", a.message));
    }
    if let Some(e) = &f.parse_error {
        parts.push(format!("parse error: {e}"));
    }
    parts.join("; ")
}
