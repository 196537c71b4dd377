use tessera_loader::ReadOptions;
use tessera_storage::{Location, StoreOptions, list_catalogs};

use crate::common::*;

/// A moto S3 server for the duration of a test.
struct S3Server {
    dir: tempfile::TempDir,
    endpoint: String,
}

impl S3Server {
    fn start() -> S3Server {
        python(); // make sure the venv exists
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(repo_root().join("tools/s3-server"))
            .arg("start")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "s3-server: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let endpoint = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .trim()
            .to_string();
        assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
        S3Server { dir, endpoint }
    }

    fn options(&self) -> StoreOptions {
        StoreOptions {
            s3_endpoint: Some(self.endpoint.clone()),
            s3_region: Some("us-east-1".into()),
            s3_access_key_id: Some("test".into()),
            s3_secret_access_key: Some("test".into()),
            s3_session_token: None,
            s3_allow_http: true,
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo_root().join("tools/s3-server"))
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

#[test]
fn load_to_and_read_from_a_real_s3_server() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("sky.csv");
    write_sky_csv(&csv, 30_000, 9);
    let url = "s3://archive/root/survey/sky";
    let mut opts = small_load(&csv, url);
    opts.store = s3.options();
    opts.scratch = Some(dir.path().join("scratch"));
    let r = load(&opts);
    assert_eq!(r.rows, 30_000);
    let cat = open(url, &s3.options());
    assert_eq!(cat.partitions.len(), r.partitions);
    let (src, cols) = source_digest(&opts.inputs, None, &ReadOptions::default());
    assert_eq!(catalog_digest(&cat, &cols), src);
    let root = Location::parse("s3://archive/root", &s3.options()).unwrap();
    let list = block_on(list_catalogs(&root)).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].schema.as_str(), list[0].table.as_str()),
        ("survey", "sky")
    );

    // A second, smaller version replaces the first: no stale leaves remain.
    let small = dir.path().join("small.csv");
    write_sky_csv(&small, 3_000, 10);
    let mut opts2 = small_load(&small, url);
    opts2.store = s3.options();
    load(&opts2);
    let cat = open(url, &s3.options());
    assert_eq!(cat.nrows(), Some(3_000));
    let (src, cols) = source_digest(&opts2.inputs, None, &ReadOptions::default());
    assert_eq!(catalog_digest(&cat, &cols), src);
    let objects: Vec<_> = block_on(async {
        use futures::TryStreamExt;
        let loc = Location::parse(url, &s3.options()).unwrap();
        loc.store
            .list(Some(&loc.prefix))
            .try_collect::<Vec<_>>()
            .await
    })
    .unwrap();
    let leaves = objects
        .iter()
        .filter(|o| o.location.as_ref().ends_with(".parquet"))
        .count();
    assert_eq!(leaves, cat.partitions.len());
}
