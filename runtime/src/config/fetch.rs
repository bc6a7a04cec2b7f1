//! A pipeline in S3 (`SLUICE_PIPELINE=s3://bucket/folder/pipeline.yaml` in
//! Lambda, `sluice daemon s3://…`): the pipeline and the files it names
//! (schemas, scripts) are copied to local storage at start, keeping their
//! layout, so relative paths work as they do on disk.
//!
//! Every object under the pipeline's folder is copied; the folder is bounded
//! (see [`MAX_OBJECTS`], [`MAX_BYTES`]) so a pipeline at a bucket's root does
//! not copy the bucket.

use std::path::{Component, Path, PathBuf};

use crate::aws::Clients;
use crate::delivery::error::classify;

/// Most objects copied from the pipeline's folder.
pub const MAX_OBJECTS: usize = 200;
/// Most bytes copied from the pipeline's folder.
pub const MAX_BYTES: u64 = 32 * 1024 * 1024;

/// Copies the folder of `bucket/key` (given without `s3://`) to local
/// storage; the local path of the pipeline file.
pub async fn pipeline(url: &str) -> Result<PathBuf, String> {
    let (bucket, key) = url
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty() && !k.ends_with('/'))
        .ok_or("expected s3://bucket/key")?;
    let folder = key.rfind('/').map_or("", |i| &key[..=i]);
    let aws = Clients::load(
        &crate::aws::Config::default(),
        std::time::Duration::from_secs(10),
    )
    .await;
    let s3 = aws.s3();
    let mut objects: Vec<(String, u64)> = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(folder)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            classify(&format!("list_objects_v2 of `{bucket}/{folder}`"), &e).message
        })?;
        for o in page.contents() {
            let (Some(k), size) = (o.key(), o.size().unwrap_or(0)) else {
                continue;
            };
            if !k.ends_with('/') {
                objects.push((k.to_owned(), u64::try_from(size).unwrap_or(0)));
            }
        }
        if objects.len() > MAX_OBJECTS {
            return Err(format!(
                "its folder `s3://{bucket}/{folder}` holds more than {MAX_OBJECTS} objects: keep the pipeline and its files in a folder of their own"
            ));
        }
    }
    if !objects.iter().any(|(k, _)| k == key) {
        return Err("no such object".into());
    }
    let total: u64 = objects.iter().map(|(_, n)| n).sum();
    if total > MAX_BYTES {
        return Err(format!(
            "its folder `s3://{bucket}/{folder}` holds {total} bytes, more than {MAX_BYTES}: keep the pipeline and its files in a folder of their own"
        ));
    }
    let root = std::env::temp_dir().join(format!("sluice-pipeline-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for (k, _) in &objects {
        let Some(local) = local_path(&root, &k[folder.len()..]) else {
            continue;
        };
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(k)
            .send()
            .await
            .map_err(|e| classify(&format!("get_object of `{k}`"), &e).message)?
            .body
            .collect()
            .await
            .map_err(|e| format!("reading `{k}`: {e}"))?
            .into_bytes();
        if let Some(dir) = local.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(&local, &body).map_err(|e| format!("{}: {e}", local.display()))?;
    }
    local_path(&root, &key[folder.len()..]).ok_or_else(|| "the key is not a file name".into())
}

/// Where the object at `relative` goes under `root`; `None` for a key that
/// would leave it (`..`, absolute parts).
fn local_path(root: &Path, relative: &str) -> Option<PathBuf> {
    let rel = Path::new(relative);
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| root.join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_the_copy() {
        let root = Path::new("/tmp/x");
        assert_eq!(
            local_path(root, "schemas/a.json"),
            Some(PathBuf::from("/tmp/x/schemas/a.json"))
        );
        assert_eq!(local_path(root, "../etc/passwd"), None);
        assert_eq!(local_path(root, "a/../../b"), None);
    }
}
