//! Boot and load: everything the agent reads before it does anything, from the flash alone.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::v2::{FixedStr, RootRecord};

use super::{Agent, BootFailure, Counters, RunningImage, Urls, largest};
use crate::config::{Buffers, DeviceConfig, Mode};
use crate::error::{AgentError, LayoutError};
use crate::flash::Storage;
use crate::image;
use crate::journal::Journal;
use crate::layout::{BootInfo, Layout};
use crate::transport::{Platform, Transport};

/// What [`Agent::load`] found on the flash.
struct Loaded {
    layout: Layout,
    journal: Journal,
    me: RunningImage,
    root_version: u32,
}

impl<'a, F: NorFlash, T: Transport, P: Platform> Agent<'a, F, T, P> {
    /// Reads the partition table, otadata, the journal and the running image (its app
    /// descriptor and SHA-256). Writes nothing.
    pub fn boot(
        flash: F,
        transport: T,
        platform: P,
        config: DeviceConfig<'a>,
        boot: BootInfo,
        mut bufs: Buffers<'a>,
    ) -> Result<Self, BootFailure<F, T, P>> {
        let mut storage = match Storage::new(flash) {
            Ok(s) => s,
            Err((error, flash)) => {
                return Err(BootFailure {
                    error,
                    flash,
                    transport,
                    platform,
                });
            }
        };
        match Self::load(&mut storage, &config, boot, &mut bufs) {
            Ok(loaded) => {
                let persisted_floor = loaded.journal.state().status_floor;
                Ok(Self {
                    storage,
                    transport,
                    platform,
                    config,
                    bufs,
                    layout: loaded.layout,
                    running: boot.running,
                    me: loaded.me,
                    journal: loaded.journal,
                    urls: Urls::default(),
                    counters: Counters::default(),
                    root_version: loaded.root_version,
                    started: false,
                    event_seq: 0,
                    persisted_floor,
                    seen_time: 0,
                    checkins: 0,
                    counter_time: 0,
                    last_refused: None,
                })
            }
            Err(error) => Err(BootFailure {
                error,
                flash: storage.into_inner(),
                transport,
                platform,
            }),
        }
    }

    fn load(
        storage: &mut Storage<F>,
        config: &DeviceConfig<'a>,
        boot: BootInfo,
        bufs: &mut Buffers<'a>,
    ) -> Result<Loaded, AgentError> {
        let scratch = largest(bufs);
        let layout = Layout::discover(storage, scratch)?;
        let app = layout
            .app(boot.running)
            .ok_or(AgentError::Layout(LayoutError::Running))?;
        storage.protect(app);
        storage.protect(layout.boot_area());
        let journal = Journal::open(storage, layout.journal())?;
        let scan = image::scan(storage, app, None, largest(bufs))?;
        let mut me = RunningImage {
            sha256: scan.sha256,
            ..RunningImage::default()
        };
        if let Some(desc) = scan.app_desc() {
            me.version = desc.version().and_then(FixedStr::new).unwrap_or_default();
            me.project = desc
                .project_name()
                .and_then(FixedStr::new)
                .unwrap_or_default();
            me.secure_version = desc.secure_version;
        }
        let root_version = match config.mode {
            Mode::V2 => Self::trusted_root(storage, &journal, config, bufs.page)?.version(),
            Mode::Legacy { .. } => 0,
        };
        if config.boot_attempt_limit == 0 {
            return Err(AgentError::Config("boot_attempt_limit must be at least 1"));
        }
        Ok(Loaded {
            layout,
            journal,
            me,
            root_version,
        })
    }

    /// The trusted root: the rotated one in the journal, else the provisioned one. Verified
    /// from bytes every time (the verified value is large; it lives on the stack briefly).
    pub(super) fn trusted_root(
        storage: &mut Storage<F>,
        journal: &Journal,
        config: &DeviceConfig<'a>,
        page: &mut [u8],
    ) -> Result<RootRecord, AgentError> {
        if journal.has_root()
            && let Some(bytes) = journal.read_root(storage, page)?
            && let Ok(root) = RootRecord::verify_initial(bytes)
        {
            return Ok(root);
        }
        RootRecord::verify_initial(config.root)
            .map_err(|_| AgentError::Config("provisioned root record does not verify"))
    }
}
