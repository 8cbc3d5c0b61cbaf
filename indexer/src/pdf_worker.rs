//! PDF extraction in a child process under operating-system limits.
//!
//! The structural check in [`crate::pdf`] refuses the hostile PDFs we know of; this is the wall
//! behind it for the ones we do not. The parent ([`extract_isolated`]) starts a worker (the
//! `lexgate` binary with [`WORKER_ARG`] as its first argument), writes the PDF to its standard
//! input and reads one JSON reply from its standard output. The worker ([`worker_main`]) limits
//! its own address space, processor time and open files before it reads a byte, then extracts.
//! A stack overflow, an allocation beyond the limit, a loop or an output flood ends the worker;
//! the parent reports it as a per-file error and carries on.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, UserError};
use crate::pdf::{PageText, PdfLimits, extract_pages_with};

/// The first argument that turns the `lexgate` binary into a PDF worker.
pub const WORKER_ARG: &str = "pdf-worker";

/// Limits on one worker, on top of the [`PdfLimits`] of the PDF itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerLimits {
    pub pdf: PdfLimits,
    /// Address space of the worker process.
    pub memory_bytes: u64,
    /// Processor time of the worker process.
    pub cpu_seconds: u64,
    /// Wall-clock time from start to reply; the worker is killed after it.
    pub wall_seconds: u64,
    /// The reply (the extracted text as JSON) may not be larger than this.
    pub max_output_bytes: u64,
}

impl Default for WorkerLimits {
    fn default() -> Self {
        Self {
            pdf: PdfLimits::default(),
            memory_bytes: 1 << 30,
            cpu_seconds: 60,
            wall_seconds: 90,
            max_output_bytes: 128 << 20,
        }
    }
}

/// How PDFs are extracted: in this process (tools, tests of the extractor itself) or in a worker
/// process (the server, ingestion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extractor {
    InProcess(PdfLimits),
    Worker { program: PathBuf, limits: WorkerLimits },
}

impl Extractor {
    /// Extracts the pages of one PDF; `name` appears only in error messages.
    pub fn extract(&self, name: &str, bytes: &[u8]) -> Result<Vec<PageText>> {
        match self {
            Self::InProcess(limits) => extract_pages_with(name, bytes, limits),
            Self::Worker { program, limits } => extract_isolated(program, name, bytes, limits),
        }
    }

    /// The same extractor with another page limit.
    pub fn with_max_pages(&self, max_pages: usize) -> Self {
        let mut out = self.clone();
        match &mut out {
            Self::InProcess(limits) => limits.max_pages = max_pages,
            Self::Worker { limits, .. } => limits.pdf.max_pages = max_pages,
        }
        out
    }
}

/// The worker's one reply.
#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Pages(Vec<PageText>),
    NotPdf,
    Encrypted,
    Corrupt(String),
    NoText,
    Internal(String),
}

/// Extracts `bytes` in a worker process started from `program` under `limits`.
pub fn extract_isolated(program: &Path, name: &str, bytes: &[u8], limits: &WorkerLimits) -> Result<Vec<PageText>> {
    let refused = |reason: String| -> Error { UserError::CorruptPdf { name: name.to_owned(), reason }.into() };
    let config = serde_json::to_string(limits).map_err(|e| Error::internal("worker limits", e))?;
    let mut child = Command::new(program)
        .arg(WORKER_ARG)
        .arg(config)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::internal(&format!("starting the PDF worker {}", program.display()), e))?;
    let started = Instant::now();
    let (Some(mut stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(Error::Internal("the PDF worker's pipes are missing".into()));
    };
    let max_output = limits.max_output_bytes;
    std::thread::scope(|scope| {
        // A worker that dies early closes its input; the write error says nothing new.
        scope.spawn(move || {
            let _ = stdin.write_all(bytes);
        });
        let reading = scope.spawn(move || {
            let mut out = Vec::new();
            let read = stdout.take(max_output + 1).read_to_end(&mut out);
            read.map(|_| out)
        });
        let errors = scope.spawn(move || {
            let mut err = Vec::new();
            let _ = stderr.take(64 << 10).read_to_end(&mut err);
            String::from_utf8_lossy(&err).into_owned()
        });
        let deadline = started + Duration::from_secs(limits.wall_seconds);
        // The reader stops at the end of the reply or at the cap; a worker still running a second
        // after that is flooding or stuck.
        let mut reader_done_at: Option<Instant> = None;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) => {}
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::internal("waiting for the PDF worker", e));
                }
            }
            let now = Instant::now();
            let reader_stuck = reading.is_finished()
                && now.duration_since(*reader_done_at.get_or_insert(now)) > Duration::from_secs(1);
            if reader_stuck || now >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let output = reading.join().map_err(|_| Error::Internal("the PDF worker's reader failed".into()))?;
        let diagnostics = errors.join().unwrap_or_default();
        let output = output.map_err(|e| Error::internal("reading the PDF worker's reply", e))?;
        if output.len() as u64 > max_output {
            return Err(refused(format!("its text is larger than {} MB", max_output >> 20)));
        }
        let Some(status) = status else {
            return Err(refused(format!("reading it took longer than {} seconds", limits.wall_seconds)));
        };
        if !status.success() {
            return Err(refused(death_reason(status, &diagnostics, limits)));
        }
        let reply: Reply = serde_json::from_slice(&output)
            .map_err(|e| Error::internal("the PDF worker's reply", format!("{e}; stderr: {diagnostics}")))?;
        match reply {
            Reply::Pages(pages) => Ok(pages),
            Reply::NotPdf => Err(UserError::NotPdf { name: name.to_owned() }.into()),
            Reply::Encrypted => Err(UserError::EncryptedPdf { name: name.to_owned() }.into()),
            Reply::Corrupt(reason) => Err(refused(reason)),
            Reply::NoText => Err(UserError::NoText { name: name.to_owned() }.into()),
            Reply::Internal(message) => Err(Error::Internal(message)),
        }
    })
}

/// Why a worker ended without a reply, in words for the person who uploaded the file.
fn death_reason(status: std::process::ExitStatus, diagnostics: &str, limits: &WorkerLimits) -> String {
    use std::os::unix::process::ExitStatusExt;
    const SIGXCPU: i32 = 24;
    const SIGKILL: i32 = 9;
    if diagnostics.contains("memory allocation") || diagnostics.contains("capacity overflow") {
        return format!("reading it needs more than {} MB of memory", limits.memory_bytes >> 20);
    }
    match status.signal() {
        Some(SIGXCPU) | Some(SIGKILL) => {
            format!("reading it took more than {} seconds of processor time", limits.cpu_seconds)
        }
        Some(_) | None => "the PDF parser crashed on it (its structure is hostile or broken)".to_owned(),
    }
}

/// The worker's side: call it first thing in `main` when the first argument is [`WORKER_ARG`].
/// It limits this process, reads the PDF from standard input, writes one reply to standard output
/// and returns the exit code. It never returns an error: every failure is a reply or a death the
/// parent understands.
pub fn worker_main(config: &str) -> i32 {
    let limits: WorkerLimits = match serde_json::from_str(config) {
        Ok(l) => l,
        Err(e) => return reply(&Reply::Internal(format!("bad worker limits: {e}"))),
    };
    if let Err(e) = limit_self(&limits) {
        return reply(&Reply::Internal(format!("cannot limit the PDF worker: {e}")));
    }
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut bytes) {
        return reply(&Reply::Internal(format!("reading the PDF: {e}")));
    }
    let outcome = match extract_pages_with("the file", &bytes, &limits.pdf) {
        Ok(pages) => Reply::Pages(pages),
        Err(Error::User(UserError::NotPdf { .. })) => Reply::NotPdf,
        Err(Error::User(UserError::EncryptedPdf { .. })) => Reply::Encrypted,
        Err(Error::User(UserError::NoText { .. })) => Reply::NoText,
        Err(Error::User(UserError::CorruptPdf { reason, .. })) => Reply::Corrupt(reason),
        Err(other) => Reply::Internal(other.to_string()),
    };
    drop(bytes);
    reply(&outcome)
}

fn reply(r: &Reply) -> i32 {
    let mut out = std::io::stdout().lock();
    match serde_json::to_writer(&mut out, r).and_then(|()| out.flush().map_err(serde_json::Error::io)) {
        Ok(()) => 0,
        Err(_) => 3,
    }
}

/// Address space, processor time, no core files and no new files: the worker only reads its
/// standard input and writes its standard output.
fn limit_self(limits: &WorkerLimits) -> std::result::Result<(), nix::Error> {
    use nix::sys::resource::{Resource, setrlimit};
    setrlimit(Resource::RLIMIT_AS, limits.memory_bytes, limits.memory_bytes)?;
    setrlimit(Resource::RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1)?;
    setrlimit(Resource::RLIMIT_CORE, 0, 0)?;
    setrlimit(Resource::RLIMIT_FSIZE, 0, 0)?;
    Ok(())
}
