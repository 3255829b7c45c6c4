//! The fake W&B server's artifact protocol, from the public shapes of W&B's SDK:
//! `CreateArtifact` (deduplicated by digest per collection), `CreateArtifactManifest`,
//! `CreateArtifactFiles` (no upload URL for content it has), the signed PUTs of
//! files and of `wandb_manifest.json` (Content-MD5 checked against the body and
//! against the MD5 declared for the file), `CommitArtifact` (every file present,
//! the manifest digest recomputed), `UseArtifact` and `LinkArtifact`.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{json, Value as Json};

use super::{Arrived, Inner, UPLOAD_HEADER};

/// What W&B has of one artifact version.
#[derive(Debug, Clone, Default)]
pub struct ArtifactView {
    pub id: String,
    pub entity: String,
    pub project: String,
    pub ty: String,
    pub collection: String,
    pub digest: String,
    /// PENDING or COMMITTED.
    pub state: String,
    /// The run that created it.
    pub run: String,
    /// Aliases asked for at creation.
    pub aliases: Vec<String>,
    pub metadata: Json,
    /// name -> base64 MD5 declared in CreateArtifactFiles.
    pub declared: BTreeMap<String, String>,
    /// Files PUT into this version.
    pub files: BTreeMap<String, Vec<u8>>,
    pub manifest: Option<Json>,
    pub used_by: Vec<String>,
    /// Its version in the collection, once committed.
    pub version_index: Option<usize>,
    /// How many CreateArtifact calls returned it.
    pub creates: usize,
}

/// A LinkArtifact.
#[derive(Debug, Clone, Default)]
pub struct LinkView {
    pub portfolio: String,
    pub entity: String,
    pub project: String,
    pub artifact: String,
    pub aliases: Vec<String>,
    pub version_index: usize,
}

#[derive(Debug, Default)]
pub struct State {
    pub list: Vec<ArtifactView>,
    pub links: Vec<LinkView>,
    /// Content W&B has, by base64 MD5, and the artifact that first stored it.
    pub contents: BTreeMap<String, String>,
}

pub const OPS: &[&str] = &[
    "CreateArtifact",
    "CreateArtifactManifest",
    "CreateArtifactFiles",
    "CommitArtifact",
    "UseArtifact",
    "LinkArtifact",
];

const MANIFEST: &str = "wandb_manifest.json";

fn md5_ok(s: &str) -> bool {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .is_ok_and(|b| b.len() == 16)
}

/// W&B's manifest digest over `contents`.
pub fn digest_of(contents: &serde_json::Map<String, Json>) -> String {
    let mut ctx = md5::Context::new();
    ctx.consume(b"wandb-artifact-manifest-v1\n");
    for (path, e) in contents {
        ctx.consume(format!("{path}:{}\n", e["digest"].as_str().unwrap_or_default()).as_bytes());
    }
    format!("{:x}", ctx.finalize())
}

type Reply = Result<Json, String>;

fn text(v: &serde_json::Map<String, Json>, k: &str) -> Result<String, String> {
    match v.get(k).and_then(Json::as_str) {
        Some(s) if !s.is_empty() => Ok(s.to_owned()),
        _ => Err(format!("{k} must be a non-empty string")),
    }
}

impl State {
    fn find(&self, id: &str) -> Result<usize, String> {
        self.list
            .iter()
            .position(|a| a.id == id)
            .ok_or_else(|| format!("no artifact {id}"))
    }

    fn committed(&self, id: &str) -> Result<usize, String> {
        let k = self.find(id)?;
        if self.list[k].state != "COMMITTED" {
            return Err(format!("artifact {id} is not committed"));
        }
        Ok(k)
    }
}

/// Answers an artifact operation; Err is a protocol violation.
pub fn graphql(
    i: &mut Inner,
    base: &str,
    op: &str,
    query: &str,
    vars: &serde_json::Map<String, Json>,
) -> Reply {
    match op {
        "CreateArtifact" => create(i, vars),
        "CreateArtifactManifest" => manifest(i, base, vars),
        "CreateArtifactFiles" => files(i, base, vars),
        "CommitArtifact" => commit(i, vars),
        "UseArtifact" => {
            let input = vars
                .get("input")
                .and_then(Json::as_object)
                .ok_or("UseArtifact: no input")?;
            let run = text(input, "runName")?;
            text(input, "entityName")?;
            text(input, "projectName")?;
            let k = i.artifacts.committed(&text(input, "artifactID")?)?;
            i.artifacts.list[k].used_by.push(run);
            Ok(json!({"useArtifact": {"artifact": {"id": i.artifacts.list[k].id}}}))
        }
        "LinkArtifact" => link(i, vars),
        _ => Err(format!("{op}: {query}")),
    }
}

fn create(i: &mut Inner, vars: &serde_json::Map<String, Json>) -> Reply {
    let (entity, project) = (text(vars, "entityName")?, text(vars, "projectName")?);
    let (ty, collection) = (
        text(vars, "artifactTypeName")?,
        text(vars, "artifactCollectionName")?,
    );
    let (digest, run) = (text(vars, "digest")?, text(vars, "runName")?);
    text(vars, "clientID")?;
    text(vars, "sequenceClientID")?;
    if !i
        .runs
        .get(&run)
        .is_some_and(|r| r.entity == entity && r.project == project)
    {
        return Err(format!(
            "CreateArtifact for run {entity}/{project}/{run}, which was not upserted"
        ));
    }
    let mut aliases = Vec::new();
    for a in vars
        .get("aliases")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        match (a["artifactCollectionName"].as_str(), a["alias"].as_str()) {
            (Some(c), Some(al)) if c == collection && !al.is_empty() => aliases.push(al.to_owned()),
            _ => {
                return Err(format!(
                    "CreateArtifact: alias {a} is not {{artifactCollectionName, alias}}"
                ))
            }
        }
    }
    let metadata = match vars.get("metadata") {
        Some(Json::String(s)) => serde_json::from_str(s).map_err(|e| format!("metadata: {e}"))?,
        None | Some(Json::Null) => Json::Null,
        Some(other) => {
            return Err(format!(
                "CreateArtifact: metadata is not a JSON string: {other}"
            ))
        }
    };
    let st = &mut i.artifacts;
    if let Some(other) = st
        .list
        .iter()
        .find(|a| a.collection == collection && a.project == project && a.ty != ty)
    {
        return Err(format!(
            "CreateArtifact: collection {collection} has type {}",
            other.ty
        ));
    }
    let latest = st
        .list
        .iter()
        .filter(|a| a.collection == collection && a.state == "COMMITTED")
        .max_by_key(|a| a.version_index)
        .map(|a| json!({"id": a.id}))
        .unwrap_or(Json::Null);
    let k = match st.list.iter().position(|a| {
        a.collection == collection
            && a.project == project
            && a.entity == entity
            && a.digest == digest
    }) {
        Some(k) => k,
        None => {
            st.list.push(ArtifactView {
                id: format!("art-{}", st.list.len() + 1),
                entity,
                project,
                ty,
                collection,
                digest,
                state: "PENDING".into(),
                run,
                aliases,
                metadata,
                ..Default::default()
            });
            st.list.len() - 1
        }
    };
    let a = &mut st.list[k];
    a.creates += 1;
    Ok(json!({"createArtifact": {"artifact": {
        "id": a.id, "state": a.state, "artifactSequence": {"latestArtifact": latest},
    }}}))
}

fn manifest(i: &mut Inner, base: &str, vars: &serde_json::Map<String, Json>) -> Reply {
    let id = text(vars, "artifactID")?;
    if text(vars, "name")? != MANIFEST {
        return Err(format!("CreateArtifactManifest: name must be {MANIFEST}"));
    }
    for k in ["entityName", "projectName", "runName"] {
        text(vars, k)?;
    }
    let upload = vars
        .get("includeUpload")
        .and_then(Json::as_bool)
        .ok_or("CreateArtifactManifest: includeUpload must be a boolean")?;
    if !vars.get("digest").is_some_and(Json::is_string) {
        return Err("CreateArtifactManifest: digest must be a string".into());
    }
    let k = i.artifacts.find(&id)?;
    if i.artifacts.list[k].state != "PENDING" {
        return Err(format!(
            "CreateArtifactManifest for committed artifact {id}"
        ));
    }
    let mut file = json!({"id": format!("file-{MANIFEST}-{id}")});
    if upload {
        file["uploadUrl"] = json!(format!(
            "{base}/artifact-storage/{id}/{MANIFEST}?signature=fake"
        ));
        file["uploadHeaders"] = json!([format!("{}:{}", UPLOAD_HEADER.0, UPLOAD_HEADER.1)]);
    }
    Ok(
        json!({"createArtifactManifest": {"artifactManifest": {"id": format!("manifest-{id}"), "file": file}}}),
    )
}

fn files(i: &mut Inner, base: &str, vars: &serde_json::Map<String, Json>) -> Reply {
    let input = vars
        .get("input")
        .and_then(Json::as_object)
        .ok_or("CreateArtifactFiles: no input")?;
    if input.get("storageLayout").and_then(Json::as_str) != Some("V2") {
        return Err("CreateArtifactFiles: storageLayout must be V2".into());
    }
    let specs = input
        .get("artifactFiles")
        .and_then(Json::as_array)
        .filter(|a| !a.is_empty())
        .ok_or("CreateArtifactFiles: artifactFiles must be a non-empty list")?;
    let mut edges = Vec::new();
    for spec in specs {
        let spec = spec
            .as_object()
            .ok_or("CreateArtifactFiles: a file spec is not an object")?;
        let (id, name, md5) = (
            text(spec, "artifactID")?,
            text(spec, "name")?,
            text(spec, "md5")?,
        );
        if !md5_ok(&md5) || text(spec, "artifactManifestID")? != format!("manifest-{id}") {
            return Err(format!(
                "CreateArtifactFiles: {name}: bad md5 or artifactManifestID"
            ));
        }
        let k = i.artifacts.find(&id)?;
        i.artifacts.list[k]
            .declared
            .insert(name.clone(), md5.clone());
        let (url, birth) = match i.artifacts.contents.get(&md5) {
            Some(birth) => (Json::Null, birth.clone()),
            None => (
                json!(format!(
                    "{base}/artifact-storage/{id}/{name}?signature=fake"
                )),
                id.clone(),
            ),
        };
        edges.push(json!({"node": {
            "uploadUrl": url,
            "uploadHeaders": [format!("{}:{}", UPLOAD_HEADER.0, UPLOAD_HEADER.1)],
            "artifact": {"id": birth},
        }}));
    }
    Ok(json!({"createArtifactFiles": {"files": {"edges": edges}}}))
}

fn commit(i: &mut Inner, vars: &serde_json::Map<String, Json>) -> Reply {
    let id = text(vars, "artifactID")?;
    let st = &mut i.artifacts;
    let k = st.find(&id)?;
    let a = &st.list[k];
    let Some(contents) = a.manifest.as_ref().and_then(|m| m["contents"].as_object()) else {
        return Err(format!(
            "CommitArtifact {id} before its manifest was uploaded"
        ));
    };
    for (path, e) in contents {
        let md5 = e["digest"].as_str().unwrap_or_default();
        if e.get("ref").is_none() && !st.contents.contains_key(md5) {
            return Err(format!("CommitArtifact {id}: {path} was never uploaded"));
        }
    }
    let digest = digest_of(contents);
    if digest != a.digest {
        return Err(format!(
            "CommitArtifact {id}: the manifest's digest is {digest}, CreateArtifact said {}",
            a.digest
        ));
    }
    let index = st
        .list
        .iter()
        .filter(|x| x.collection == a.collection && x.state == "COMMITTED")
        .count();
    let a = &mut st.list[k];
    if a.state != "COMMITTED" {
        a.state = "COMMITTED".into();
        a.version_index = Some(index);
    }
    Ok(json!({"commitArtifact": {"artifact": {"id": id, "digest": a.digest}}}))
}

fn link(i: &mut Inner, vars: &serde_json::Map<String, Json>) -> Reply {
    let portfolio = text(vars, "artifactPortfolioName")?;
    let (entity, project) = (text(vars, "entityName")?, text(vars, "projectName")?);
    let id = text(vars, "artifactId")?;
    let mut aliases = Vec::new();
    for a in vars
        .get("aliases")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        match (a["artifactCollectionName"].as_str(), a["alias"].as_str()) {
            (Some(c), Some(al)) if c == portfolio => aliases.push(al.to_owned()),
            _ => {
                return Err(format!(
                    "LinkArtifact: alias {a} is not {{artifactCollectionName: {portfolio}, alias}}"
                ))
            }
        }
    }
    i.artifacts.committed(&id)?;
    let links = &mut i.artifacts.links;
    let index = match links
        .iter()
        .position(|l| l.portfolio == portfolio && l.artifact == id)
    {
        Some(k) => {
            links[k].aliases.extend(aliases);
            links[k].version_index
        }
        None => {
            let index = links.iter().filter(|l| l.portfolio == portfolio).count();
            links.push(LinkView {
                portfolio,
                entity,
                project,
                artifact: id,
                aliases,
                version_index: index,
            });
            index
        }
    };
    Ok(json!({"linkArtifact": {"versionIndex": index}}))
}

/// A PUT to an artifact storage URL: a file or the manifest.
pub fn upload(i: &mut Inner, r: &Arrived, id: &str, name: &str) -> Result<(), String> {
    if r.headers.contains_key("authorization") {
        return Err("a signed-URL upload carries the API key's authorization".into());
    }
    if r.headers.get(UPLOAD_HEADER.0).and_then(|v| v.to_str().ok()) != Some(UPLOAD_HEADER.1) {
        return Err(format!(
            "the uploadHeaders ({}) were not sent",
            UPLOAD_HEADER.0
        ));
    }
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5::compute(&r.body).0);
    match r.headers.get("content-md5").and_then(|v| v.to_str().ok()) {
        Some(m) if m == md5 => {}
        other => return Err(format!("Content-MD5 {other:?} but the body's is {md5}")),
    }
    let st = &mut i.artifacts;
    let k = st.find(id)?;
    if name == MANIFEST {
        let m: Json = serde_json::from_slice(&r.body).map_err(|e| format!("manifest: {e}"))?;
        let ok = m["version"] == 1
            && m["storagePolicy"] == "wandb-storage-policy-v1"
            && m["contents"].as_object().is_some_and(|c| {
                c.values()
                    .all(|e| e["digest"].is_string() && e["size"].is_u64())
            });
        if !ok {
            return Err(format!("{MANIFEST} is not a v1 manifest: {m}"));
        }
        st.list[k].manifest = Some(m);
        return Ok(());
    }
    if st.list[k].declared.get(name) != Some(&md5) {
        return Err(format!(
            "{name}: its MD5 {md5} is not what CreateArtifactFiles declared"
        ));
    }
    st.contents.entry(md5).or_insert_with(|| id.to_owned());
    st.list[k].files.insert(name.to_owned(), r.body.to_vec());
    Ok(())
}
