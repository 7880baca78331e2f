//! A PSRP runspace pool on the PEP over one authenticated connection. The conversation itself is
//! `bmc_winrm::psrp::client::Session`; this driver owns what it leaves out: the connection, the
//! clock, the operating system's random source, logs and progress, and the mapping of failures
//! onto [`PepError`]s.

use super::transport::{Connection, TransportError};
use super::{PepError, PepEvent, Progress};
use bmc_winrm::psrp::client::{self, ClientError, Config, Event, OsRng, PipelineResult};
use bmc_winrm::psrp::clixml::Command;
use std::time::{Duration, Instant};

pub(crate) struct Session {
    connection: Connection,
    name: String,
    psrp: client::Session<OsRng>,
}

impl Session {
    /// The endpoint, for messages.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    fn error(&self, during: &str, error: TransportError) -> PepError {
        let endpoint = self.name.clone();
        match error {
            TransportError::Connect(reason) => PepError::Unreachable { endpoint, reason },
            TransportError::Refused => PepError::Protocol { endpoint, reason: "re-authentication was demanded".into() },
            TransportError::Protocol(reason) => PepError::Protocol { endpoint, reason: format!("{during}: {reason}") },
            TransportError::Broken(reason) => PepError::Interrupted { endpoint, during: during.into(), reason },
            TransportError::CertificateChanged { pinned, presented } => {
                PepError::CertificateChanged { endpoint, pinned, presented }
            }
        }
    }

    /// `limit` is the deadline a pipeline ran against, for the message.
    fn client_error(&self, error: ClientError, limit: Duration) -> PepError {
        let endpoint = self.name.clone();
        match error {
            ClientError::PoolRefused(reason) => PepError::NotAPep { endpoint, reason },
            ClientError::Protocol(reason) => PepError::Protocol { endpoint, reason },
            ClientError::Command(reason) => PepError::Client(reason),
            ClientError::DeadlineExceeded { during } => PepError::DeadlineExceeded { endpoint, during, limit },
        }
    }

    /// Sends what the session asks for and feeds back the answers until it has nothing to send;
    /// returns the result of the pipeline that finished, if one did.
    async fn drive(
        &mut self,
        limit: Duration,
        progress: Option<&Progress>,
    ) -> Result<Option<PipelineResult>, PepError> {
        let mut finished = None;
        loop {
            let request = match self.psrp.poll_request(Instant::now()) {
                Ok(Some(request)) => request,
                Ok(None) => break,
                Err(error) => return Err(self.client_error(error, limit)),
            };
            let operation = request.operation;
            // Sizes and statuses only: SOAP bodies carry SecureStrings and are never logged.
            tracing::trace!(endpoint = %self.name, operation, bytes = request.soap.len(), "WS-Man request");
            match self.connection.exchange(&request.soap).await {
                Ok(answer) => {
                    tracing::debug!(endpoint = %self.name, operation, status = answer.status, bytes = answer.soap.len(), "WS-Man answer");
                    if let Err(error) = self.psrp.handle_answer(Instant::now(), answer.status, &answer.soap) {
                        return Err(self.client_error(error, limit));
                    }
                }
                Err(error) => {
                    tracing::debug!(endpoint = %self.name, operation, ?error, "WS-Man exchange failed");
                    if !request.best_effort {
                        return Err(self.error(&request.during, error));
                    }
                    self.psrp.handle_no_answer();
                }
            }
            self.events(progress, &mut finished);
        }
        // Finishing a phase is noticed when asked for the next request.
        self.events(progress, &mut finished);
        Ok(finished)
    }

    /// Logs and reports what the session saw; keeps a finished pipeline's result.
    fn events(&mut self, progress: Option<&Progress>, finished: &mut Option<PipelineResult>) {
        while let Some(event) = self.psrp.poll_event() {
            match event {
                Event::PipelineMessage(kind) => {
                    tracing::trace!(endpoint = %self.name, kind = format_args!("{:#010x}", kind.0), "PSRP message");
                }
                Event::Waiting(elapsed) => progress.into_iter().for_each(|p| p(PepEvent::Waiting(elapsed))),
                Event::Warning(text) => {
                    progress.into_iter().for_each(|p| p(PepEvent::Record(format!("WARNING: {text}"))));
                }
                Event::Record(text) => progress.into_iter().for_each(|p| p(PepEvent::Record(text.clone()))),
                Event::Finished(result) => *finished = Some(result),
                Event::Opened | Event::KeyExchanged | Event::Closed => {}
            }
        }
    }

    /// Creates the runspace pool and waits until it is Opened.
    pub(crate) async fn open(
        connection: Connection,
        name: String,
        url: String,
        operation_timeout: Duration,
    ) -> Result<Session, PepError> {
        let psrp = client::Session::new(Config::privileged_endpoint(url, operation_timeout), OsRng);
        let mut session = Session { connection, name, psrp };
        session.drive(Duration::ZERO, None).await?;
        Ok(session)
    }

    /// The session-key exchange a SecureString needs (MS-PSRP 3.1.5.4.3).
    pub(crate) async fn exchange_keys(&mut self) -> Result<(), PepError> {
        if let Err(error) = self.psrp.exchange_keys() {
            return Err(self.client_error(error, Duration::ZERO));
        }
        self.drive(Duration::ZERO, None).await.map(drop)
    }

    /// Runs one command and collects every stream until the pipeline ends.
    pub(crate) async fn invoke(
        &mut self,
        command: &Command,
        deadline: Instant,
        limit: Duration,
        progress: &Progress,
    ) -> Result<PipelineResult, PepError> {
        if let Err(error) = self.psrp.invoke(command, Instant::now(), deadline) {
            return Err(self.client_error(error, limit));
        }
        let finished = self.drive(limit, Some(progress)).await?;
        finished.ok_or_else(|| PepError::Protocol {
            endpoint: self.name.clone(),
            reason: format!("{} ended without a result", command.name),
        })
    }

    /// Deletes the shell (closes the runspace pool). Best effort: the PEP may already have
    /// closed it (after `Close-PrivilegedEndpoint`).
    pub(crate) async fn close(mut self) {
        self.psrp.close();
        let _ = self.drive(Duration::ZERO, None).await;
    }
}
