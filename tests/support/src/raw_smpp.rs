//! The raw SMPP peer: bytes written by hand from the SMPP 3.4 layout (no
//! codec of ours, none of a library), frames read as header words and body,
//! for tests that send what no well-behaved peer would (malformed PDUs,
//! bursts, binds from chosen addresses, a USSD centre's exact TLVs).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub const BIND_TRANSCEIVER: u32 = 0x0000_0009;
pub const BIND_TRANSCEIVER_RESP: u32 = 0x8000_0009;

/// (command_id, command_status, sequence_number, body)
pub type Frame = (u32, u32, u32, Vec<u8>);

/// What a read found.
#[derive(Debug)]
pub enum Read {
    Frame(Frame),
    /// EOF or a reset: the gateway closed the connection.
    Closed,
    TimedOut,
}

/// A PDU written by hand from the SMPP 3.4 layout.
pub fn pdu(command_id: u32, status: u32, sequence: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&((16 + body.len()) as u32).to_be_bytes());
    out.extend_from_slice(&command_id.to_be_bytes());
    out.extend_from_slice(&status.to_be_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A C-octet string: the bytes and a NUL.
pub fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// A bind body (interface version 3.4, no address range).
pub fn bind_body(system_id: &str, password: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, system_id);
    cstr(&mut b, password);
    cstr(&mut b, "");
    b.extend_from_slice(&[0x34, 0, 0]);
    cstr(&mut b, "");
    b
}

/// A connection speaking raw SMPP.
pub struct RawSmpp {
    stream: TcpStream,
}

impl RawSmpp {
    /// Over an established connection (one the test accepted, say).
    pub fn new(stream: TcpStream) -> RawSmpp {
        stream.set_nodelay(true).unwrap();
        RawSmpp { stream }
    }

    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> RawSmpp {
        RawSmpp::new(TcpStream::connect(addr).await.unwrap())
    }

    /// Connects to `addr` from the local address `local` (127.0.0.0/8 is
    /// all local on Linux, so each is a distinct client), within `wait`.
    pub async fn connect_from(local: IpAddr, addr: SocketAddr, wait: Duration) -> RawSmpp {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(local, 0)).unwrap();
        let stream = tokio::time::timeout(wait, socket.connect(addr))
            .await
            .expect("connects in time")
            .expect("connects");
        RawSmpp::new(stream)
    }

    /// Writes; a connection the gateway already closed may refuse.
    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Writes, which must succeed.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.write(bytes).await.expect("written");
    }

    /// The next whole PDU's bytes (its length included), within `wait`, or
    /// why there is none.
    pub async fn read_bytes(&mut self, wait: Duration) -> Result<Vec<u8>, Read> {
        let read = async {
            let mut len = [0u8; 4];
            if self.stream.read_exact(&mut len).await.is_err() {
                return Err(Read::Closed);
            }
            let length = u32::from_be_bytes(len) as usize;
            assert!(
                (16..=65536).contains(&length),
                "sane command_length {length}"
            );
            let mut bytes = vec![0u8; length];
            bytes[..4].copy_from_slice(&len);
            if self.stream.read_exact(&mut bytes[4..]).await.is_err() {
                return Err(Read::Closed);
            }
            Ok(bytes)
        };
        tokio::time::timeout(wait, read)
            .await
            .unwrap_or(Err(Read::TimedOut))
    }

    /// The next frame within `wait`, or why there is none.
    pub async fn read(&mut self, wait: Duration) -> Read {
        match self.read_bytes(wait).await {
            Ok(bytes) => {
                let word = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
                Read::Frame((word(4), word(8), word(12), bytes[16..].to_vec()))
            }
            Err(why) => why,
        }
    }

    /// The next frame, which must come within `wait`.
    pub async fn frame(&mut self, wait: Duration) -> Frame {
        match self.read(wait).await {
            Read::Frame(frame) => frame,
            other => panic!("expected a PDU within {wait:?}, got {other:?}"),
        }
    }

    /// Binds as a transceiver (sequence 1); returns the
    /// bind_transceiver_resp status.
    pub async fn bind(&mut self, system_id: &str, password: &str, wait: Duration) -> u32 {
        self.send(&pdu(
            BIND_TRANSCEIVER,
            0,
            1,
            &bind_body(system_id, password),
        ))
        .await;
        let (id, status, seq, _) = self.frame(wait).await;
        assert_eq!((id, seq), (BIND_TRANSCEIVER_RESP, 1));
        status
    }
}
