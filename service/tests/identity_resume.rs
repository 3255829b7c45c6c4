//! Run identity (generated ids and names, default project, path) and resume.

mod support;

use runcore::proto::v1::{FinishRequest, InitRequest, Resume, RunState};
use support::*;
use tonic::Code;

#[tokio::test]
async fn generated_identity_and_defaults() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    let a = init(&mut c, InitRequest::default()).await.run.unwrap();
    let b = init(&mut c, InitRequest::default()).await.run.unwrap();
    assert_eq!(a.id.len(), 8);
    assert!(
        a.id.chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit()),
        "{}",
        a.id
    );
    assert_ne!(a.id, b.id);
    assert_eq!(a.project, "uncategorized");
    assert_eq!(a.path, format!("uncategorized/{}", a.id));
    let parts: Vec<&str> = a.name.split('-').collect();
    assert_eq!(parts.len(), 3, "{}", a.name);
    assert_eq!(parts[2], "1");
    assert_eq!(b.name.rsplit('-').next(), Some("2"));
    assert_eq!(a.state(), RunState::Running);
    assert!(
        a.dir.ends_with(&format!("uncategorized/{}/files", a.id)),
        "{}",
        a.dir
    );
    assert!(std::path::Path::new(&a.dir).is_dir());

    let named = init(
        &mut c,
        InitRequest {
            id: "abc".into(),
            name: "mine".into(),
            entity: "team".into(),
            project: "proj".into(),
            group: "g".into(),
            job_type: "train".into(),
            tags: vec!["t".into()],
            notes: "n".into(),
            ..Default::default()
        },
    )
    .await
    .run
    .unwrap();
    assert_eq!(
        (
            named.path.as_str(),
            named.name.as_str(),
            named.group.as_str(),
            named.job_type.as_str()
        ),
        ("team/proj/abc", "mine", "g", "train")
    );
    assert_eq!(
        (named.tags.clone(), named.notes.as_str()),
        (vec!["t".to_string()], "n")
    );
}

#[tokio::test]
async fn resume_modes() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    let req = |resume: Resume| InitRequest {
        id: "res".into(),
        project: "p".into(),
        resume: resume as i32,
        ..Default::default()
    };
    let err = c.init(req(Resume::Must)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let first = init(&mut c, req(Resume::Allow)).await;
    assert!(!first.resumed);
    for i in 0..5 {
        c.log(log_req("res", &[("x", i as f64)], None, None))
            .await
            .unwrap();
    }
    let err = c.init(req(Resume::Never)).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains("resume"), "{}", err.message());
    let err = c.init(req(Resume::Unspecified)).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    // Resuming an open run.
    let again = init(&mut c, req(Resume::Must)).await;
    assert!(again.resumed);
    assert_eq!(again.starting_step, 5);
    c.finish(FinishRequest {
        run_id: "res".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    // Resuming a finished run: running again, at last step + 1.
    let back = init(
        &mut c,
        InitRequest {
            config: data(&[("extra", 1.0)]),
            ..req(Resume::Allow)
        },
    )
    .await;
    assert!(back.resumed);
    assert_eq!(back.starting_step, 5);
    let run = back.run.unwrap();
    assert_eq!(run.state(), RunState::Running);
    assert!(run.resumed);
    assert_eq!(run.exit_code, None);
    c.log(log_req("res", &[("x", 5.0)], None, None))
        .await
        .unwrap();
    c.finish(FinishRequest {
        run_id: "res".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let rows = read_jsonl(&s.run_dir("p", "res").join("history.jsonl"));
    assert_eq!(steps(&rows), (0..6).collect::<Vec<_>>());
    let config = read_json(&s.run_dir("p", "res").join("config.json"));
    assert_eq!(num(get(&config, "extra")), 1.0);
    // The id lives in project p: another project cannot claim it.
    let err = c
        .init(InitRequest {
            project: "q".into(),
            ..req(Resume::Allow)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("belongs to project \"p\""),
        "{}",
        err.message()
    );
}
