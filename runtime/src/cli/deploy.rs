//! `sluice deploy template PIPELINE` and `sluice deploy ecs PIPELINE`: the
//! arguments, and the template `crate::deploy` makes, printed.

use std::path::PathBuf;

use serde_json::Value;

use super::{EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE};
use crate::config::{self, Env, LoadError};
pub use crate::deploy::Arch;
use crate::deploy::{ecs, sam};
use crate::diagnostics::render::{self, Format};

/// Arguments of `sluice deploy`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print an AWS SAM template (JSON) for the pipeline as a Lambda function.
    Template(TemplateArgs),
    /// Print a CloudFormation template (JSON) for the pipeline as an ECS
    /// Fargate service of `sluice daemon` workers.
    Ecs(EcsArgs),
}

/// Arguments of `sluice deploy ecs`.
#[derive(Debug, clap::Args)]
pub struct EcsArgs {
    /// The pipeline file, as the container sees it (copied into the image or
    /// mounted), unless `--pipeline-url` is given.
    pub file: PathBuf,
    /// The image built from `deploy/ecs/Dockerfile` (the `Image` parameter's default).
    #[arg(long)]
    pub image: String,
    /// Where the workers read the pipeline at start instead: an
    /// `s3://bucket/folder/pipeline.yaml` URL (the folder holds the files the
    /// pipeline names). The task role gains read access to that folder.
    #[arg(long, value_name = "S3_URL")]
    pub pipeline_url: Option<String>,
    /// CPU architecture of the image.
    #[arg(long, value_enum, default_value_t = Arch::Arm64)]
    pub arch: Arch,
}

/// Arguments of `sluice deploy template`.
#[derive(Debug, clap::Args)]
pub struct TemplateArgs {
    /// The pipeline file, as it is named inside the deployment package
    /// (relative to the folder `cargo lambda build` ran in).
    pub file: PathBuf,
    /// The function's package: the zip `cargo lambda build --output-format zip` made.
    #[arg(long, default_value = "target/lambda/sluice/bootstrap.zip")]
    pub code_uri: String,
    /// Where the function reads the pipeline at init instead of its package:
    /// an `s3://bucket/folder/pipeline.yaml` URL (the folder holds the files
    /// the pipeline names). The policy gains read access to that folder.
    #[arg(long, value_name = "S3_URL")]
    pub pipeline_url: Option<String>,
    /// CPU architecture the bootstrap was built for.
    #[arg(long, value_enum, default_value_t = Arch::Arm64)]
    pub arch: Arch,
}

/// Runs a `sluice deploy` command.
pub fn main(command: &Command) -> i32 {
    match command {
        Command::Template(args) => print(&args.file, |p| {
            sam::template(
                p,
                &sam::Options {
                    file: &args.file,
                    code_uri: &args.code_uri,
                    pipeline_url: args.pipeline_url.as_deref(),
                    arch: args.arch,
                },
            )
        }),
        Command::Ecs(args) => print(&args.file, |p| {
            ecs::template(
                p,
                &ecs::Options {
                    file: &args.file,
                    image: &args.image,
                    pipeline_url: args.pipeline_url.as_deref(),
                    arch: args.arch,
                },
            )
        }),
    }
}

/// Loads the pipeline and prints the template `make` builds for it.
fn print(file: &std::path::Path, make: impl Fn(&config::Pipeline) -> Result<Value, String>) -> i32 {
    let loaded = match config::load(file, &Env::process()) {
        Ok(l) => l,
        Err(e) => {
            crate::err!("{}", render::text(e.diagnostics(), Format::Human));
            return match e {
                LoadError::Unreadable(_) => EXIT_UNREADABLE,
                LoadError::Invalid(_) => EXIT_INVALID,
            };
        }
    };
    match make(&loaded.pipeline) {
        Ok(t) => {
            crate::outln!("{}", serde_json::to_string_pretty(&t).unwrap_or_default());
            EXIT_OK
        }
        Err(e) => {
            crate::errln!("error: {e}");
            EXIT_INVALID
        }
    }
}
