//! One command at a time: written, its lines read until the final result
//! within its own timeout, unsolicited codes that come meanwhile kept for
//! later; a timeout answered by ESC and an `AT` probe, a silent modem
//! declared hung.

use super::*;

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Session<T> {
    /// Runs a command the modem may not know: `None` when refused.
    pub(super) async fn execute_optional(
        &mut self,
        command: &str,
    ) -> Result<Option<Vec<String>>, ModemError> {
        let timeout = self.settings.command_timeout;
        match self.execute(command, timeout).await {
            Ok(lines) => Ok(Some(lines)),
            Err(ModemError::Refused { result, .. }) => {
                debug!(command, ?result, "command refused");
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Runs a command; a timeout is followed by the probe (and may become [`ModemError::Hung`]).
    pub(super) async fn execute(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<Vec<String>, ModemError> {
        match self.execute_raw(command, timeout).await {
            Err(ModemError::Timeout { command, after }) => {
                Err(self.after_timeout(command, after).await)
            }
            other => {
                if other.is_ok() {
                    self.timeouts_in_a_row = 0;
                }
                other
            }
        }
    }

    /// Runs a command: its information lines, or how it failed. A timeout is just reported.
    pub(super) async fn execute_raw(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<Vec<String>, ModemError> {
        self.write(format!("{command}\r").as_bytes()).await?;
        let prefix = command::response_prefix(command);
        match prefix {
            Some(prefix) => self.framed.codec_mut().expect(&[prefix]),
            None => self.framed.codec_mut().expect_nothing(),
        }
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        let result = loop {
            match self.next_event(deadline).await {
                Err(error) => break Err(error),
                Ok(Some(AtEvent::Final(FinalResult::Ok))) => break Ok(()),
                Ok(Some(AtEvent::Final(result))) => {
                    break Err(ModemError::Refused {
                        command: command.to_owned(),
                        result,
                    })
                }
                Ok(Some(AtEvent::Line(line))) => {
                    if line.trim().eq_ignore_ascii_case(command) {
                        // The echo: after `ATE0` was taken, a hint of a reset.
                        if self.echo_off && self.ready.load(Ordering::Acquire) {
                            self.echo_seen = true;
                            self.check = Check::SettingsAndSim;
                        }
                        continue;
                    }
                    lines.push(line);
                }
                Ok(Some(AtEvent::Unsolicited(urc))) => self.pending.push_back(urc),
                Ok(Some(AtEvent::Prompt)) => {
                    // A prompt nobody asked for: leave it.
                    self.write(b"\x1b").await?;
                }
                Ok(None) => {
                    // Wavecom answers AT+CPIN? with the +CPIN line and no OK.
                    let answered = prefix
                        .is_some_and(|p| p == "+CPIN:" && lines.iter().any(|l| l.starts_with(p)));
                    if answered {
                        break Ok(());
                    }
                    break Err(ModemError::Timeout {
                        command: command.to_owned(),
                        after: timeout,
                    });
                }
            }
        };
        self.framed.codec_mut().expect_nothing();
        result.map(|()| lines)
    }

    /// After a command timed out: ESC (leaves a prompt), then an `AT` probe.
    /// The timeout when the modem answers the probe; hung when it does not,
    /// or after too many timeouts in a row.
    pub(super) async fn after_timeout(&mut self, command: String, after: Duration) -> ModemError {
        self.timeouts_in_a_row += 1;
        warn!(command = %redact::command(&command), ?after, in_a_row = self.timeouts_in_a_row, "modem did not answer in time");
        if self.timeouts_in_a_row >= MAX_TIMEOUTS_IN_A_ROW {
            return ModemError::Hung { command };
        }
        if let Err(error) = self.write(b"\x1b\r").await {
            return error;
        }
        match self.execute_raw("AT", Duration::from_secs(2)).await {
            Ok(_) => match self.drain(QUIET).await {
                Ok(()) => ModemError::Timeout { command, after },
                Err(error) => error,
            },
            Err(ModemError::Timeout { .. }) => ModemError::Hung { command },
            Err(ModemError::Refused { .. }) => ModemError::Timeout { command, after },
            Err(error) => error,
        }
    }

    /// Reads until the modem has been quiet for `quiet`, dropping stray
    /// answers and keeping unsolicited codes for later.
    pub(super) async fn drain(&mut self, quiet: Duration) -> Result<(), ModemError> {
        while let Some(event) = self.next_event(Instant::now() + quiet).await? {
            match event {
                AtEvent::Unsolicited(urc) => self.pending.push_back(urc),
                other => debug!(event = %other, "late answer dropped"),
            }
        }
        Ok(())
    }

    /// The next thing the modem says before `deadline` (`None`: nothing
    /// came). A codec error (an overlong line of garbage) ends the session:
    /// the stream stops after it, and the owner reopens the port.
    pub(super) async fn next_event(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<AtEvent>, ModemError> {
        match timeout_at(deadline, self.framed.next()).await {
            Err(_) => Ok(None),
            Ok(None) => Err(ModemError::PortClosed),
            Ok(Some(Ok(event))) => Ok(Some(event)),
            Ok(Some(Err(error))) => Err(error.into()),
        }
    }

    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), ModemError> {
        let io = self.framed.get_mut();
        io.write_all(bytes).await.map_err(AtError::Io)?;
        io.flush().await.map_err(AtError::Io)?;
        Ok(())
    }
}
