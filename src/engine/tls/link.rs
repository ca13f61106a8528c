//! One link's TLS session over its socket: ciphertext read in large pieces (rustls reads
//! at most 4 KiB per call on its own, a syscall each), plaintext handed to the engine's
//! frame parser, frames encrypted from the link's send queue.

use mio::net::TcpStream;
use std::io::{self, IoSlice, Read, Write};

/// Ciphertext read from the socket per syscall.
const READ_CHUNK: usize = 256 << 10;

pub(crate) struct TlsLink {
    conn: rustls::Connection,
    /// Ciphertext read from the socket and not yet handed to rustls, from `at`. Empty (and
    /// without capacity) between bursts.
    cipher: Vec<u8>,
    at: usize,
    /// The handshake completed (seen by [`TlsLink::take_established`] once).
    established: bool,
}

/// Why a TLS read or write failed: the socket, or the TLS session itself (a bad
/// certificate, not TLS at all, an alert from the peer).
pub(crate) enum TlsError {
    Io(io::Error),
    Tls(String),
}

impl From<io::Error> for TlsError {
    fn from(e: io::Error) -> Self {
        TlsError::Io(e)
    }
}

impl TlsLink {
    pub(crate) fn new(conn: rustls::Connection) -> TlsLink {
        TlsLink { conn, cipher: Vec::new(), at: 0, established: false }
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// True once, when the handshake has completed since the last call.
    pub(crate) fn take_established(&mut self) -> bool {
        if self.established || self.conn.is_handshaking() {
            return false;
        }
        self.established = true;
        true
    }

    /// Encrypted bytes are waiting to be written (handshake messages, alerts, records).
    pub(crate) fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Decrypts into `out` as much as is available without blocking. `Ok(0)`: the peer
    /// closed (EOF or close_notify). `Err(Io(WouldBlock))`: nothing more for now.
    pub(crate) fn read_plain(&mut self, stream: &TcpStream, out: &mut [u8]) -> Result<usize, TlsError> {
        let mut filled = 0;
        loop {
            match self.conn.reader().read(&mut out[filled..]) {
                // close_notify: what came before it first, then the end.
                Ok(0) => return Ok(filled),
                Ok(n) => {
                    filled += n;
                    if filled == out.len() {
                        return Ok(filled);
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if filled > 0 => {
                    // What was decrypted before the error is handed over first.
                    let _ = e;
                    return Ok(filled);
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(TlsError::Io(e)),
            }
            if self.at == self.cipher.len() {
                self.cipher.clear();
                self.at = 0;
                if self.cipher.capacity() < READ_CHUNK {
                    self.cipher = Vec::with_capacity(READ_CHUNK);
                }
                self.cipher.resize(READ_CHUNK, 0);
                let r = (&mut &*stream).read(&mut self.cipher);
                let n = match r {
                    Ok(n) => n,
                    Err(e) => {
                        self.cipher.clear();
                        self.release();
                        if filled > 0 && e.kind() == io::ErrorKind::WouldBlock {
                            return Ok(filled);
                        }
                        return Err(TlsError::Io(e));
                    }
                };
                self.cipher.truncate(n);
                if n == 0 {
                    self.release();
                    // EOF: rustls learns of it (an EOF without close_notify mid-record is
                    // an error it reports below; between records it is a clean close).
                    let _ = self.conn.read_tls(&mut io::empty());
                    if filled > 0 {
                        return Ok(filled);
                    }
                    return match self.conn.process_new_packets() {
                        Ok(_) => Ok(0),
                        Err(e) => Err(TlsError::Tls(e.to_string())),
                    };
                }
            }
            let mut rest = &self.cipher[self.at..];
            let before = rest.len();
            match self.conn.read_tls(&mut rest) {
                Ok(_) => self.at += before - rest.len(),
                // rustls's plaintext buffer is full: drained above, so this does not happen.
                Err(e) => return Err(TlsError::Io(e)),
            }
            if self.at == self.cipher.len() {
                self.release();
            }
            if let Err(e) = self.conn.process_new_packets() {
                return Err(TlsError::Tls(e.to_string()));
            }
        }
    }

    /// Lets go of the ciphertext buffer once it is used up, so that an idle link holds none.
    fn release(&mut self) {
        if self.at == self.cipher.len() {
            self.cipher = Vec::new();
            self.at = 0;
        }
    }

    /// Writes the encrypted bytes waiting in rustls. `Ok(true)`: all written; `Ok(false)`:
    /// the socket is full (the writable edge resumes it).
    pub(crate) fn write_records(&mut self, stream: &TcpStream) -> io::Result<bool> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut &*stream) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Encrypts the bytes of `plain` as far as rustls's buffer allows, writing records out
    /// as it fills. Returns the plaintext bytes taken and whether everything taken also
    /// left: `false` when the socket is full, or, during the handshake, when rustls holds
    /// as much plaintext as it will before the handshake completes.
    pub(crate) fn write_plain(&mut self, stream: &TcpStream, plain: &[&[u8]]) -> io::Result<(usize, bool)> {
        let mut taken = 0usize;
        let mut idx = 0;
        let mut off = 0;
        let mut iov = Vec::with_capacity(plain.len().min(64));
        loop {
            while idx < plain.len() && off == plain[idx].len() {
                idx += 1;
                off = 0;
            }
            if idx == plain.len() {
                return Ok((taken, self.write_records(stream)?));
            }
            iov.clear();
            iov.push(IoSlice::new(&plain[idx][off..]));
            iov.extend(plain[idx + 1..].iter().take(63).map(|p| IoSlice::new(p)));
            let n = self.conn.writer().write_vectored(&iov)?;
            if n == 0 {
                // rustls's buffer is full: write it out, or stop when the socket is full
                // (or the handshake holds everything back).
                if !self.write_records(stream)? || self.conn.is_handshaking() {
                    return Ok((taken, false));
                }
                continue;
            }
            taken += n;
            let mut k = n;
            while k > 0 {
                let left = plain[idx].len() - off;
                if k >= left {
                    k -= left;
                    idx += 1;
                    off = 0;
                } else {
                    off += k;
                    k = 0;
                }
            }
        }
    }
}
