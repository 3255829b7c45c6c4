//! Checks of the artifact RPCs' requests, as for every other RPC: run ids, text
//! without control characters, counts and sizes within `crate::limits`, values
//! (metadata, a reference's extra) as config values are checked, and input quoted
//! back at most `limits::QUOTE_CHARS` long. Names, aliases and artifact paths are
//! checked by the store itself ([`crate::artifacts::names`]), which never writes a
//! name or path it has not checked.

use tonic::Status;

use super::{invalid, label, map, run_id, too_large};
use crate::artifacts::names;
use crate::limits::{
    quote, MAX_ALIASES, MAX_DESCRIPTION, MAX_DOWNLOAD_PATHS, MAX_PATH_BYTES, MAX_REFERENCE_SIZE,
};
use crate::proto::v1::{
    ArtifactChunk, ArtifactFile, ArtifactFileSource, CreateArtifactRequest, DownloadArtifactRequest,
};

/// Checks a list of aliases' length (each alias is checked by the store).
pub fn aliases(aliases: &[String]) -> Result<(), Status> {
    if aliases.len() > MAX_ALIASES {
        return Err(too_large(format!(
            "{} aliases in one request, over the limit of {MAX_ALIASES}",
            aliases.len()
        ))
        .into());
    }
    Ok(())
}

/// Checks a path on the sidecar's host or a URI: not too long, no control
/// characters (a NUL among them).
fn host_path(text: &str, what: &str) -> Result<(), Status> {
    if text.len() > MAX_PATH_BYTES {
        return Err(invalid(format!(
            "{what} {} is longer than {MAX_PATH_BYTES} bytes",
            quote(text)
        ))
        .into());
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(format!("{what} {} holds a control character", quote(text))).into());
    }
    Ok(())
}

/// Checks CreateArtifact: its run, description, metadata, aliases and
/// distributed id (the name, type and aliases themselves are the store's).
pub fn create(req: &mut CreateArtifactRequest) -> Result<(), Status> {
    run_id(&req.run_id)?;
    let n = req.description.chars().count();
    if n > MAX_DESCRIPTION {
        return Err(too_large(format!(
            "artifact description has {n} characters, over the limit of {MAX_DESCRIPTION}"
        ))
        .into());
    }
    if req
        .description
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(invalid(
            "artifact description holds a control character other than a line break or tab".into(),
        )
        .into());
    }
    map(&mut req.metadata, "artifact metadata")?;
    aliases(&req.aliases)?;
    label(&req.distributed_id, "distributed_id")?;
    host_path(&req.base, "base")?;
    Ok(())
}

/// Checks a file added by its path on the sidecar's host.
pub fn file(f: &ArtifactFileSource) -> Result<(), Status> {
    host_path(&f.source, "artifact file source")?;
    names::check_sha256("artifact file", &f.sha256)?;
    Ok(())
}

/// Checks a reference: its URI, declared digests and size, and its extra values.
pub fn reference(r: &mut ArtifactFile) -> Result<(), Status> {
    host_path(&r.r#ref, "artifact reference")?;
    names::check_sha256("artifact reference", &r.sha256)?;
    if r.md5.len() > 256 || !r.md5.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid(format!(
            "artifact reference md5 {} must be at most 256 printable ASCII characters",
            quote(&r.md5)
        ))
        .into());
    }
    if r.size > MAX_REFERENCE_SIZE {
        return Err(invalid(format!(
            "artifact reference size {} is over the largest, {MAX_REFERENCE_SIZE}",
            r.size
        ))
        .into());
    }
    map(&mut r.extra, "artifact reference extra")?;
    Ok(())
}

/// Checks a streamed piece of a file (its path is the store's).
pub fn chunk(c: &ArtifactChunk) -> Result<(), Status> {
    names::check_sha256("artifact file", &c.sha256)?;
    Ok(())
}

/// Checks DownloadArtifact's root and the paths it selects.
pub fn download(req: &DownloadArtifactRequest) -> Result<(), Status> {
    host_path(&req.root, "download root")?;
    if req.paths.len() > MAX_DOWNLOAD_PATHS {
        return Err(too_large(format!(
            "{} paths to download, over the limit of {MAX_DOWNLOAD_PATHS}; download the whole version or a directory",
            req.paths.len()
        ))
        .into());
    }
    for p in &req.paths {
        names::check_path(p.trim_end_matches('/'))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_requests_are_refused_with_short_quotes() {
        let mut req = CreateArtifactRequest {
            run_id: "r".into(),
            description: "line\nbreaks\tare fine".into(),
            ..Default::default()
        };
        assert!(create(&mut req).is_ok());
        req.description.push('\u{7}');
        assert!(create(&mut req).is_err());
        req.description.clear();
        req.distributed_id = "x\u{0}y".into();
        assert!(create(&mut req).is_err());
        req.distributed_id.clear();
        req.run_id = "../x".into();
        assert!(create(&mut req).is_err());

        let long = "/".to_owned() + &"a".repeat(10_000);
        let e = file(&ArtifactFileSource {
            path: "a".into(),
            source: long,
            sha256: String::new(),
        })
        .unwrap_err();
        assert!(e.message().len() < 400, "{}", e.message());
        let bad_sha = ArtifactFileSource {
            path: "a".into(),
            source: "/tmp/a".into(),
            sha256: "z".repeat(64),
        };
        assert!(file(&bad_sha).is_err());

        let mut r = ArtifactFile {
            r#ref: "s3://b/k".into(),
            size: u64::MAX,
            ..Default::default()
        };
        assert!(reference(&mut r).is_err());
        r.size = 10;
        assert!(reference(&mut r).is_ok());

        let d = DownloadArtifactRequest {
            root: "/tmp/x".into(),
            paths: vec!["../etc".into()],
            ..Default::default()
        };
        assert_eq!(
            download(&d).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        let many = DownloadArtifactRequest {
            paths: vec!["a".into(); MAX_DOWNLOAD_PATHS + 1],
            ..Default::default()
        };
        assert_eq!(
            download(&many).unwrap_err().code(),
            tonic::Code::ResourceExhausted
        );
    }
}
