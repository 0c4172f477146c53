//! Bringing the modem up and telling whether it stayed up: the init
//! sequence (echo off, numeric errors, SIM PIN, PDU mode, storage,
//! indications, registration reports), the probes a freshly booted or
//! silent modem gets, and the check that what was set is still in force.

use super::*;

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Session<T> {
    /// At every watch, and after a hint that the modem may have restarted
    /// (a start-up line, the echo back after `ATE0`): is what the session
    /// set still in force? New-message indications other than those set
    /// (`AT+CNMI?`; they are off after a restart), text mode (`AT+CMGF?`)
    /// or, after a hint (`sim`), a SIM that is no longer ready (`AT+CPIN?`;
    /// not at every watch: Wavecom answers it without `OK`, which costs a
    /// command timeout) mean the modem restarted: it is initialised again.
    /// A hint alone changes nothing.
    pub(super) async fn check_settings(&mut self, sim: bool) -> Result<(), ModemError> {
        let mut lost = Vec::new();
        if let Some(lines) = self.execute_optional("AT+CMGF?").await? {
            match command::parse_cmgf(&lines) {
                Ok(0) => {}
                Ok(_) => lost.push("text mode is on".to_owned()),
                Err(error) => debug!(%error, "AT+CMGF? answer not read"),
            }
        }
        if let Some((mode, mt)) = self.indications {
            if let Some(lines) = self.execute_optional(command::cnmi_query()).await? {
                match command::parse_cnmi(&lines) {
                    Ok(now) if now.get(..2) != Some(&[mode, mt][..]) => {
                        lost.push(format!("new-message indications are {now:?}"));
                    }
                    Ok(_) => {}
                    Err(error) => debug!(%error, "AT+CNMI? answer not read"),
                }
            }
        }
        let timeout = self.settings.command_timeout;
        if sim {
            match self.execute(command::cpin_query(), timeout).await {
                Ok(lines) => match command::parse_cpin(&lines) {
                    Ok(PinState::Ready) => {}
                    Ok(state) => lost.push(format!("the SIM says {state:?}")),
                    Err(error) => debug!(%error, "AT+CPIN? answer not read"),
                },
                // A SIM busy or not ready (CME 14, 515): still booting.
                Err(ModemError::Refused { result, .. }) => {
                    lost.push(format!("the SIM answers {result:?}"))
                }
                Err(error) => return Err(error),
            }
        }
        if lost.is_empty() {
            debug!("the modem kept its settings");
            if std::mem::take(&mut self.echo_seen) {
                // Only the echo came back: turned off again, nothing else.
                self.execute_optional("ATE0").await?;
                self.echo_seen = false;
                self.check = Check::Nothing;
            }
            return Ok(());
        }
        warn!(why = %lost.join("; "), "the modem restarted; initialising it again");
        self.pending.clear();
        self.reinit = true;
        self.emit(ModemEvent::Rebooted).await;
        Ok(())
    }

    /// Brings the modem to a known state.
    pub(super) async fn initialise(&mut self, soft_reset: bool) -> Result<(), ModemError> {
        self.ready.store(false, Ordering::Release);
        // `handed_over` stays: the storage outlives a restart, and a slot
        // is handed over again only when it holds something else.
        self.timeouts_in_a_row = 0;
        self.indications = None;
        self.echo_off = false;
        self.echo_seen = false;
        self.check = Check::Nothing;
        // Leave a half-typed command or a `> ` prompt.
        self.write(b"\x1b\r").await?;
        if soft_reset {
            info!("soft reset of the modem (AT+CFUN=0, AT+CFUN=1)");
            let long = Duration::from_secs(30);
            if let Err(error) = self.execute_raw("AT+CFUN=0", long).await {
                debug!(%error, "AT+CFUN=0 failed");
            }
            if let Err(error) = self.execute_raw("AT+CFUN=1", long).await {
                debug!(%error, "AT+CFUN=1 failed");
            }
        }
        self.probe_until_answering().await?;
        // Echo and verbose errors matter less than the rest: a modem that
        // refuses them still works.
        self.echo_off = self.execute_optional("ATE0").await?.is_some();
        self.execute_optional("AT+CMEE=1").await?;
        self.unlock_sim().await?;
        let timeout = self.settings.command_timeout;
        self.execute("AT+CMGF=0", timeout).await?;
        let storage = self.settings.storage.clone();
        let select =
            command::cpms(&storage, &storage, &storage).ok_or_else(|| ModemError::Unexpected {
                command: "AT+CPMS".to_owned(),
                detail: format!("{storage:?} is not a message storage name"),
            })?;
        let lines = self.execute(&select, timeout).await?;
        if let Ok(uses) = command::parse_cpms(&lines) {
            if let Some(first) = uses.into_iter().next() {
                self.emit(ModemEvent::Storage(first)).await;
            }
        }
        // Store and indicate (+CMTI), status reports indicated (+CDSI) or
        // handed over (+CDS); older modems know fewer modes.
        let mut indications = false;
        for cnmi in [
            "AT+CNMI=2,1,0,2,0",
            "AT+CNMI=2,1,0,1,0",
            "AT+CNMI=2,1,0,0,0",
            "AT+CNMI=1,1,0,0,0",
        ] {
            match self.execute(cnmi, timeout).await {
                Ok(_) => {
                    indications = true;
                    let set = command::parse_cnmi(&[cnmi.replacen("AT+CNMI=", "+CNMI: ", 1)])?;
                    self.indications = Some((set[0], set[1]));
                    break;
                }
                Err(error @ ModemError::Refused { .. }) => debug!(%error, "trying a simpler CNMI"),
                Err(error) => return Err(error),
            }
        }
        if !indications {
            warn!("the modem takes no AT+CNMI setting: new messages are found by the periodic sweep only");
        }
        if self.execute("AT+CREG=2", timeout).await.is_err() {
            self.execute_optional("AT+CREG=1").await?;
        }
        let model = self.model().await?;
        self.ready.store(true, Ordering::Release);
        info!(%model, "modem ready");
        self.emit(ModemEvent::Ready { model }).await;
        survivable(self.watch().await)?;
        survivable(self.sweep().await)
    }

    pub(super) async fn model(&mut self) -> Result<String, ModemError> {
        let mut parts = Vec::new();
        for query in ["AT+CGMI", "AT+CGMM"] {
            if let Some(lines) = self.execute_optional(query).await? {
                parts.extend(
                    lines
                        .iter()
                        .map(|l| {
                            l.trim_start_matches(&format!("{}:", &query[2..]))
                                .trim()
                                .to_owned()
                        })
                        .filter(|l| !l.is_empty()),
                );
            }
        }
        Ok(parts.join(" "))
    }

    /// Sends `AT` until the modem answers (it may still be booting).
    pub(super) async fn probe_until_answering(&mut self) -> Result<(), ModemError> {
        for attempt in 1..=BOOT_PROBES {
            match self.execute_raw("AT", Duration::from_secs(2)).await {
                Ok(_) => {
                    // Late answers to earlier probes must not be taken for
                    // the answers of the commands that follow.
                    self.drain(QUIET).await?;
                    return Ok(());
                }
                Err(ModemError::Timeout { .. }) | Err(ModemError::Refused { .. }) => {
                    debug!(attempt, "modem not answering AT yet");
                    self.write(b"\x1b\r").await?;
                }
                Err(error) => return Err(error),
            }
        }
        Err(ModemError::Hung {
            command: "AT".to_owned(),
        })
    }

    pub(super) async fn unlock_sim(&mut self) -> Result<(), ModemError> {
        let timeout = self.settings.command_timeout;
        // The PIN entered, kept again once the SIM is ready with it (it is
        // right: the SIM asks again after a restart of the modem).
        let mut entered = None;
        for _ in 0..10 {
            let state = match self.execute("AT+CPIN?", timeout).await {
                Ok(lines) => match command::parse_cpin(&lines) {
                    Ok(state) => state,
                    // An answer without its +CPIN line (a modem still booting): ask again.
                    Err(error) => {
                        debug!(%error, "no SIM state in the answer");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
                // SIM busy (CME 14) or not ready yet after a reset: wait.
                Err(ModemError::Refused { result, .. }) => {
                    debug!(?result, "SIM not ready");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(error) => return Err(error),
            };
            match state {
                PinState::Ready => {
                    if entered.is_some() {
                        self.settings.pin = entered;
                    }
                    return Ok(());
                }
                PinState::SimPin => {
                    let Some(pin) = self.settings.pin.clone() else {
                        return Err(ModemError::Sim(
                            "the SIM asks for a PIN and none is configured".to_owned(),
                        ));
                    };
                    // One try only: a wrong PIN entered again and again blocks the SIM.
                    self.settings.pin = None;
                    let Some(enter) = command::cpin_enter(&pin) else {
                        return Err(ModemError::PinRefused(
                            "the configured PIN is not 4 to 8 digits".to_owned(),
                        ));
                    };
                    if let Err(error) = self.execute(&enter, timeout).await {
                        return Err(ModemError::PinRefused(error.to_string()));
                    }
                    entered = Some(pin);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                PinState::SimPuk => {
                    return Err(ModemError::Sim(
                        "the SIM is blocked and wants its PUK".to_owned(),
                    ))
                }
                PinState::Other(state) => {
                    return Err(ModemError::Sim(format!("the SIM is not ready: {state}")))
                }
            }
        }
        Err(ModemError::Sim("the SIM did not become ready".to_owned()))
    }
}
