//! A scripted GSM modem on a pseudo-terminal, for testing gateways without
//! hardware.
//!
//! [`SimModem::start`] opens a pty, puts it in raw mode and points a
//! symlink (say `/tmp/ttyMODEM0`) at the slave side; a gateway opens that
//! path as it would a USB modem's serial port and speaks AT commands to it.
//! The simulator answers from the master side as real modems do, in the
//! style of a [`Profile`] (Huawei's `\r\r\n` and `^RSSI` lines, ZTE's
//! `+ZPASR`, Wavecom's `+CPIN: READY` without `OK`, ...).
//!
//! The other side of the simulator is a "phone": [`SimModem::phone_sends`]
//! texts the modem's SIM (the message lands in SIM storage with `+CMTI`, or
//! is pushed with `+CMT`, per [`Delivery`]), and [`SimModem::submitted`] /
//! [`SimModem::replies_to`] read what the gateway sent with `AT+CMGS`.
//! [`SimModem::fault`] makes the modem misbehave ([`Fault`]).
//!
//! # What is simulated
//!
//! PDU mode only (`AT+CMGF=1` is accepted but `AT+CMGS`, `AT+CMGL` and
//! `AT+CMGR` then fail with `+CMS ERROR: 302`); one storage, the SIM
//! (`"SM"`; `"ME"`/`"MT"` are accepted as names for it); indications
//! (`+CMTI`, `+CMT`, `+CDS`) only once the gateway enabled them with
//! `AT+CNMI=<mode>,<mt>[,<bm>,<ds>]` (`mt` ≥ 1; `ds` ≥ 1 for status
//! reports) — before that, and after a reboot, messages are stored
//! silently, as on real modems. Status reports are pushed with `+CDS` only
//! (never stored). Incoming messages wait in the "network" while the SIM is
//! full, the PIN is not entered, the radio is off (`AT+CFUN=0`), the modem
//! hangs or the gateway is typing a PDU after `> `, and are delivered once
//! that ends. Echo covers command lines and the hex typed after `> `.
//! A final result code trails its information lines by 30 ms, so
//! unsolicited lines (`+CMTI`, Huawei's `^RSSI`, `+CDS`) can come between
//! them, as on real modems; bytes the gateway writes meanwhile are taken
//! after the final result.
//!
//! Not simulated: text mode, voice, USSD, data, other storages, `+CDSI`,
//! a busy period after boot, the USB device vanishing on `AT+CFUN=1,1`
//! (the pty stays; the modem is silent for 300 ms), TIOCEXCL left behind
//! by a gateway that died without clearing it (serialport clears it on
//! close; if it does not, reopening fails with `EBUSY` for non-root).

mod machine;

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use crate::pdu::{self, Pdu, PduAddress, SubmitOptions, Tpdu};
use machine::{Incoming, Machine};

/// The make of modem imitated: answers and unsolicited lines in its style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Textbook 3GPP TS 27.005/27.007.
    #[default]
    Generic,
    /// Huawei E173 style: `\r\r\n` after identification and `^` lines,
    /// a status line every 3 s (`^RSSI`/`^MODE`/`^DSFLOWRPT`, and every
    /// other one `^BOOT:`, which these sticks print over and over in normal
    /// use; also mid-`+CMGL` listing; `AT^CURC=0` stops them), `COMMAND NOT
    /// SUPPORT` for unknown commands, `^SIMST: 1` on reboot, SIM indexes
    /// from 0.
    Huawei,
    /// ZTE MF190 style: `+ZPASR: "UMTS"` before the `> ` prompt and
    /// `+ZDONR: ...` before `+CMGS:`.
    Zte,
    /// Wavecom style: `AT+CPIN?` answered `+CPIN: READY` without `OK`;
    /// `+WIND: 3` on reboot.
    Wavecom,
    /// Telit style: `+CMGL: 1,0,"",50` and `+CMGR: 0,"",50`.
    Telit,
    /// Pantech style: `+CMGL: 17,1,35` (no alpha field).
    Pantech,
}

impl Profile {
    /// Manufacturer, model, revision.
    fn identity(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Profile::Generic => ("SIMCOM_Ltd", "SIMCOM_SIM800", "Revision:1418B04SIM800C24"),
            Profile::Huawei => ("huawei", "E173", "11.126.85.00.209"),
            Profile::Zte => ("ZTE CORPORATION", "MF190", "BD_MF190V1.0.0B05"),
            Profile::Wavecom => (
                "WAVECOM MODEM",
                "MULTIBAND  900E  1800",
                "R7.46.0.201008261119",
            ),
            Profile::Telit => ("Telit", "GL865-QUAD", "10.00.146"),
            Profile::Pantech => ("PANTECH", "UM175", "UM175AL_V1.0.5"),
        }
    }
}

impl FromStr for Profile {
    type Err = String;

    /// `generic`, `huawei`, `zte`, `wavecom`, `telit`, `pantech` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "generic" => Ok(Profile::Generic),
            "huawei" => Ok(Profile::Huawei),
            "zte" => Ok(Profile::Zte),
            "wavecom" => Ok(Profile::Wavecom),
            "telit" => Ok(Profile::Telit),
            "pantech" => Ok(Profile::Pantech),
            other => Err(format!(
                "unknown modem profile {other:?} (generic, huawei, zte, wavecom, telit, pantech)"
            )),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Profile::Generic => "generic",
            Profile::Huawei => "huawei",
            Profile::Zte => "zte",
            Profile::Wavecom => "wavecom",
            Profile::Telit => "telit",
            Profile::Pantech => "pantech",
        };
        f.write_str(name)
    }
}

/// How an incoming message reaches the gateway (once `AT+CNMI` enabled
/// indications; before that every message is stored silently).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Stored in the SIM (stat 0, "received unread") and announced with
    /// `+CMTI: "SM",<index>`.
    #[default]
    Store,
    /// Pushed as `+CMT: ,<length>` and the PDU line, not stored
    /// (`AT+CNMI=2,2`).
    Direct,
    /// Pushed with `+CMT` and also stored with `+CMTI`, as some modems do.
    DirectAndStore,
}

/// How the simulated modem is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimSettings {
    /// The make imitated.
    pub profile: Profile,
    /// How incoming messages are handed over.
    pub delivery: Delivery,
    /// SIM storage size in messages (default 20).
    pub slots: u32,
    /// The SIM PIN, if the SIM asks for one at boot (`None`: `+CPIN: READY`).
    pub pin: Option<String>,
    /// The service centre number (`AT+CSCA?`, and the SMSC of delivered
    /// PDUs), international with `+`.
    pub smsc: String,
    /// The SIM's own number (`AT+CNUM`), which phones text.
    pub own_number: String,
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            profile: Profile::Generic,
            delivery: Delivery::Store,
            slots: 20,
            pin: None,
            smsc: "+84980200030".to_owned(),
            own_number: "+84912000111".to_owned(),
        }
    }
}

/// How [`SimModem::phone_sends_with`] sends a text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PhoneOptions {
    /// UCS-2 even when GSM-7 would do.
    pub ucs2: bool,
    /// A 16-bit concatenation reference (IEI 0x08) rather than 8-bit.
    pub wide_reference: bool,
    /// The order the parts arrive in, as 0-based part indexes (`[1, 0]`:
    /// the second part first). Indexes out of range are ignored; parts not
    /// named are not sent.
    pub part_order: Option<Vec<usize>>,
    /// The concatenation reference (default: the simulator's counter).
    pub reference: Option<u16>,
    /// 0-based indexes of parts that never arrive.
    pub drop_parts: Vec<usize>,
}

/// An SMS-SUBMIT the modem accepted with `+CMGS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The message reference the modem answered (`+CMGS: <mr>`), counting
    /// from 0 and wrapping at 256.
    pub mr: u8,
    /// The destination: `+` and digits when international, else as dialled.
    pub to: String,
    /// The SMS-SUBMIT, decoded.
    pub pdu: pdu::Submit,
    /// The PDU as the gateway wrote it (upper-case hex, SMSC part first).
    pub hex: String,
    /// When it was accepted.
    pub at: Instant,
}

/// [`SimModem::wait_submitted`] ran out of time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitTimeout {
    /// How many were wanted.
    pub wanted: usize,
    /// Everything submitted by then (fewer than wanted).
    pub got: Vec<Submitted>,
}

impl fmt::Display for WaitTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "waited for {} submitted messages, got {}",
            self.wanted,
            self.got.len()
        )
    }
}

impl std::error::Error for WaitTimeout {}

/// Ways the modem misbehaves, set with [`SimModem::fault`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Stop answering anything (input is read and discarded) until
    /// [`Fault::Recover`]. Incoming messages wait in the network.
    Hang,
    /// Answer the next `AT+CMGS=<len>` with the `> ` prompt, then go
    /// silent; only `AT+CFUN=...` (answered, and ending the hang; `=1,1`
    /// reboots) or [`Fault::Recover`] bring it back.
    HangAtNextSend,
    /// Let this many `AT+CMGS` through, then hang at the next one as
    /// [`Fault::HangAtNextSend`] does (a multipart reply cut after its
    /// first parts).
    HangAfterSends(u32),
    /// Reboot now: the boot banner (`^SIMST: 1` for Huawei, `+WIND: 3` and
    /// `+CPIN:` for Wavecom, `RDY`, `+CFUN: 1`, `+CPIN:` for the others),
    /// then the power-on state: echo on, `CMEE`, `CMGF`, `CNMI`, `CREG`
    /// reset (so no indications until `AT+CNMI` again), the PIN asked
    /// again if configured. SIM storage keeps its messages.
    Reboot,
    /// Fill every free SIM slot with an old, read message: `AT+CPMS?`
    /// reports used == total and new messages wait in the network until
    /// `AT+CMGD` makes room (then they come in, like an SMSC's retries).
    StorageFull,
    /// The next `times` `AT+CMGS` answer `+CMS ERROR: <code>` after the
    /// PDU (330, 500, 512...); nothing is submitted.
    CmsErrorOnSend {
        /// The error code.
        code: u16,
        /// How many sends fail.
        times: u32,
    },
    /// `AT+CMGD` fails with `+CMS ERROR: 500` until [`Fault::Recover`]:
    /// messages stay on the SIM after the gateway has taken them.
    RefuseDelete,
    /// Store incoming messages without `+CMTI` until [`Fault::Recover`],
    /// as when an indication is lost on a busy line: only listing the
    /// storage finds them.
    LoseIndications,
    /// End [`Fault::Hang`], [`Fault::HangAtNextSend`],
    /// [`Fault::HangAfterSends`] (armed or in force),
    /// [`Fault::RefuseDelete`] and [`Fault::LoseIndications`].
    Recover,
}

/// What the handle and the I/O task share.
struct Shared {
    machine: Mutex<Machine>,
    /// Something changed: output to write, a new deadline, shutdown.
    wake: Notify,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Machine> {
        self.machine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Stops the simulator when the last [`SimModem`] handle goes.
struct Guard {
    shared: Arc<Shared>,
    path: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
    }
}

/// A running simulated modem: a cheap handle ([`Clone`]); dropping the last
/// one, or [`SimModem::shutdown`], stops it and removes the symlink.
#[derive(Clone)]
pub struct SimModem {
    guard: Arc<Guard>,
}

impl fmt::Debug for SimModem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimModem")
            .field("path", &self.guard.path)
            .finish_non_exhaustive()
    }
}

impl SimModem {
    /// Opens a pty in raw mode, points the symlink `link` at its slave
    /// side (replacing a symlink already there; any other file there is an
    /// error) and starts answering on the current tokio runtime. The
    /// simulator keeps a slave descriptor open itself, so the gateway can
    /// close and reopen the port at will (what the modem writes while the
    /// port is closed waits in the pty for the next reader). The gateway's
    /// baud rate and line settings are accepted and ignored.
    ///
    /// Needs a tokio runtime with I/O and time enabled; the simulator runs
    /// as a task on it.
    pub async fn start(link: &Path, settings: SimSettings) -> io::Result<SimModem> {
        let pty = nix::pty::openpty(None, None).map_err(io::Error::from)?;
        let mut termios = tcgetattr(&pty.slave).map_err(io::Error::from)?;
        cfmakeraw(&mut termios);
        tcsetattr(&pty.slave, SetArg::TCSANOW, &termios).map_err(io::Error::from)?;
        let flags = fcntl(&pty.master, FcntlArg::F_GETFL).map_err(io::Error::from)?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(&pty.master, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
        let slave_path = nix::unistd::ttyname(pty.slave.as_fd()).map_err(io::Error::from)?;

        match std::fs::symlink_metadata(link) {
            Ok(meta) if meta.file_type().is_symlink() => std::fs::remove_file(link)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a symlink", link.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::os::unix::fs::symlink(&slave_path, link)?;

        // SAFETY: the `File` owns the master descriptor, which is neither
        // replaced nor closed while the `AsyncFd` holds it.
        let master = unsafe { AsyncFd::register(File::from(pty.master))? };
        let slave = File::from(pty.slave);
        let shared = Arc::new(Shared {
            machine: Mutex::new(Machine::new(settings)),
            wake: Notify::new(),
            stop: AtomicBool::new(false),
        });
        tokio::spawn(run(
            Arc::clone(&shared),
            master,
            slave,
            link.to_owned(),
            slave_path.clone(),
        ));
        tracing::debug!(link = %link.display(), slave = %slave_path.display(), "sim: modem started");
        Ok(SimModem {
            guard: Arc::new(Guard {
                shared,
                path: link.to_owned(),
            }),
        })
    }

    /// The symlink the gateway opens.
    pub fn path(&self) -> &Path {
        &self.guard.path
    }

    fn shared(&self) -> &Shared {
        &self.guard.shared
    }

    fn changed(&self) {
        self.shared().wake.notify_one();
    }

    /// A phone texts the modem's SIM: `text` as one or more SMS-DELIVERs
    /// (GSM-7, or UCS-2 when needed; concatenated when long) from `from`
    /// (`+` and digits: international; digits: unknown type; anything
    /// else: an alphanumeric sender). Returns how many parts were handed to
    /// the network; each is delivered as [`SimSettings::delivery`] says, at
    /// once or when the modem can take it.
    pub fn phone_sends(&self, from: &str, text: &str) -> usize {
        self.phone_sends_with(from, text, PhoneOptions::default())
    }

    /// [`SimModem::phone_sends`] with options: encoding, reference, parts
    /// out of order or missing.
    pub fn phone_sends_with(&self, from: &str, text: &str, opts: PhoneOptions) -> usize {
        let mut machine = self.shared().lock();
        let reference = opts.reference.unwrap_or_else(|| machine.take_reference());
        let smsc = machine.settings().smsc.clone();
        let parts = pdu::deliver_parts(
            &sender_address(from),
            text,
            reference,
            machine::now_timestamp(),
            SubmitOptions {
                status_report: false,
                validity: None,
                force_ucs2: opts.ucs2,
                wide_reference: opts.wide_reference,
            },
        );
        let order: Vec<usize> = match &opts.part_order {
            Some(order) => order.iter().copied().filter(|&i| i < parts.len()).collect(),
            None => (0..parts.len()).collect(),
        };
        let mut delivered = 0;
        for index in order {
            if opts.drop_parts.contains(&index) {
                continue;
            }
            let pdu = Pdu {
                smsc: Some(PduAddress::international(&smsc)),
                tpdu: Tpdu::Deliver(parts[index].clone()),
            };
            match pdu::encode(&pdu) {
                Ok(encoded) => {
                    machine.incoming(Incoming {
                        hex: encoded.hex(),
                        tpdu_len: encoded.tpdu_length,
                    });
                    delivered += 1;
                }
                Err(error) => tracing::warn!(%error, "sim: cannot encode a phone's message"),
            }
        }
        drop(machine);
        self.changed();
        delivered
    }

    /// One raw SMS-DELIVER PDU (hex, service centre address first) from the
    /// network, delivered as [`SimSettings::delivery`] says.
    ///
    /// # Panics
    ///
    /// When `pdu_hex` is not hex or too short for its SMSC part (a test bug).
    pub fn deliver_raw(&self, pdu_hex: &str) {
        let bytes = pdu::from_hex(pdu_hex).expect("deliver_raw: not hex");
        let smsc_len = usize::from(*bytes.first().expect("deliver_raw: empty PDU"));
        let tpdu_len = bytes
            .len()
            .checked_sub(1 + smsc_len)
            .expect("deliver_raw: PDU shorter than its SMSC part");
        self.shared().lock().incoming(Incoming {
            hex: pdu::to_hex(&bytes),
            tpdu_len,
        });
        self.changed();
    }

    /// A phone calls the modem's SIM from `from`: `RING` and `+CLIP` with
    /// the caller's number, as a modem prints them for an incoming call.
    pub fn phone_calls(&self, from: &str) {
        self.shared().lock().call(from);
        self.changed();
    }

    /// Every SMS-SUBMIT accepted so far, in order.
    pub fn submitted(&self) -> Vec<Submitted> {
        self.shared().lock().submitted().to_vec()
    }

    /// Waits until at least `count` messages were submitted in all, and
    /// returns them all; on timeout, [`WaitTimeout`] holds what came.
    pub async fn wait_submitted(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Submitted>, WaitTimeout> {
        let mut rx = self.shared().lock().watch_submitted();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|&n| n >= count)).await;
        let got = self.submitted();
        match reached {
            Ok(Ok(_)) => Ok(got),
            _ if got.len() >= count => Ok(got),
            _ => Err(WaitTimeout { wanted: count, got }),
        }
    }

    /// The texts sent to `number` (compared without a leading `+`), one
    /// per complete message in the order their first part was sent;
    /// concatenated parts are joined by reference and sequence, and a
    /// message with parts missing is left out.
    pub fn replies_to(&self, number: &str) -> Vec<String> {
        let wanted = number.trim_start_matches('+');
        let submitted = self.submitted();
        // In order of first part: the (reference, total) of a concatenated
        // message, and its parts by sequence.
        type Parts = Vec<Option<String>>;
        let mut messages: Vec<(Option<(u16, u8)>, Parts)> = Vec::new();
        for sub in submitted
            .iter()
            .filter(|s| s.to.trim_start_matches('+') == wanted)
        {
            let text = sub.pdu.user_data.text();
            match sub.pdu.user_data.concatenation() {
                Some(c) if c.total > 1 && c.sequence >= 1 && c.sequence <= c.total => {
                    let key = Some((c.reference, c.total));
                    let slot = usize::from(c.sequence - 1);
                    let open = messages
                        .iter_mut()
                        .find(|(k, parts)| *k == key && parts[slot].is_none());
                    match open {
                        Some((_, parts)) => parts[slot] = Some(text),
                        None => {
                            let mut parts = vec![None; usize::from(c.total)];
                            parts[slot] = Some(text);
                            messages.push((key, parts));
                        }
                    }
                }
                _ => messages.push((None, vec![Some(text)])),
            }
        }
        messages
            .into_iter()
            .filter(|(_, parts)| parts.iter().all(Option::is_some))
            .map(|(_, parts)| parts.into_iter().flatten().collect())
            .collect()
    }

    /// The SIM storage indexes in use.
    pub fn storage(&self) -> Vec<u32> {
        self.shared().lock().storage()
    }

    /// Every AT command line received (lines starting with `AT`, trimmed,
    /// without the `\r`), in order — including those a hung modem ignored.
    pub fn commands(&self) -> Vec<String> {
        self.shared().lock().commands().to_vec()
    }

    /// Every unsolicited line the modem wrote so far (`+CMTI: "SM",3`,
    /// `^BOOT:...`, a reboot's banner), in order; a two-line code as its
    /// two lines joined by `\r\n`.
    pub fn unsolicited(&self) -> Vec<String> {
        self.shared().lock().unsolicited().to_vec()
    }

    /// Makes the modem misbehave (or recover).
    pub fn fault(&self, fault: Fault) {
        let mut machine = self.shared().lock();
        if fault == Fault::StorageFull {
            let smsc = machine.settings().smsc.clone();
            let old = pdu::deliver_parts(
                &PduAddress::international("84900000001"),
                "an old message",
                0,
                machine::now_timestamp(),
                SubmitOptions::default(),
            );
            let pdu = Pdu {
                smsc: Some(PduAddress::international(&smsc)),
                tpdu: Tpdu::Deliver(old[0].clone()),
            };
            match pdu::encode(&pdu) {
                Ok(encoded) => machine.fill_storage(Incoming {
                    hex: encoded.hex(),
                    tpdu_len: encoded.tpdu_length,
                }),
                Err(error) => tracing::warn!(%error, "sim: cannot encode a filler message"),
            }
        }
        machine.fault(fault);
        drop(machine);
        self.changed();
    }

    /// Stops the simulator (all handles) and removes the symlink.
    pub fn shutdown(&self) {
        self.shared().stop.store(true, Ordering::SeqCst);
        self.changed();
    }
}

/// The TP-OA of a phone's message.
fn sender_address(from: &str) -> PduAddress {
    if let Some(digits) = from.strip_prefix('+') {
        PduAddress::international(digits)
    } else if !from.is_empty() && from.bytes().all(|b| b.is_ascii_digit()) {
        PduAddress::unknown(from)
    } else {
        PduAddress {
            number: from.to_owned(),
            type_of_address: 0xD0,
        }
    }
}

/// The I/O task: reads the gateway's bytes into the machine, writes its
/// answers, runs its timers.
async fn run(
    shared: Arc<Shared>,
    master: AsyncFd<File>,
    slave: File,
    link: PathBuf,
    slave_path: PathBuf,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let deadline = {
            let mut machine = shared.lock();
            machine.tick(Instant::now());
            pending.extend(machine.take_output());
            machine.next_deadline()
        };
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ready = master.readable() => {
                let Ok(mut guard) = ready else { break };
                match guard.try_io(|fd| fd.get_ref().read(&mut buf)) {
                    Ok(Ok(0)) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Ok(Ok(n)) => shared.lock().feed(&buf[..n]),
                    Ok(Err(error)) => {
                        // EIO only if every slave descriptor closed; ours stays.
                        tracing::debug!(%error, "sim: master read");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(_would_block) => {}
                }
            }
            ready = master.writable(), if !pending.is_empty() => {
                let Ok(mut guard) = ready else { break };
                match guard.try_io(|fd| fd.get_ref().write(&pending)) {
                    Ok(Ok(n)) => {
                        pending.drain(..n);
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "sim: master write");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(_would_block) => {}
                }
            }
            _ = shared.wake.notified() => {}
            _ = sleep => {}
        }
    }
    // Remove the symlink if it still points at our pty.
    if std::fs::read_link(&link).ok().as_deref() == Some(slave_path.as_path()) {
        let _ = std::fs::remove_file(&link);
    }
    drop(slave);
    drop(master);
    tracing::debug!(link = %link.display(), "sim: modem stopped");
}
