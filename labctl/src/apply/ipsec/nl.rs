//! A small blocking netlink client for the IPsec steps: one request, its
//! ack (with the kernel's extended-ack message on failure) or its dump.
//! The socket belongs to the namespace of the thread that opens it.

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable, NLMSG_DONE, NLMSG_ERROR,
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_sys::{Socket, SocketAddr};

/// What the kernel said no with: the errno and, if it gave one, its message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{}", .io, .message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default())]
pub struct NlError {
    pub io: std::sync::Arc<std::io::Error>,
    pub message: Option<String>,
}

impl NlError {
    fn io(e: std::io::Error) -> Self {
        NlError { io: std::sync::Arc::new(e), message: None }
    }

    pub fn errno(&self) -> Option<i32> {
        self.io.raw_os_error()
    }
}

pub struct Nl {
    socket: Socket,
    seq: u32,
}

/// NLMSGERR_ATTR_MSG: the extended-ack text.
const NLMSGERR_ATTR_MSG: u16 = 1;

impl Nl {
    /// A socket of `protocol` (e.g. NETLINK_XFRM) in the calling thread's namespace.
    pub fn open(protocol: isize) -> Result<Self, NlError> {
        let mut socket = Socket::new(protocol).map_err(NlError::io)?;
        socket.bind_auto().map_err(NlError::io)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(NlError::io)?;
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(Nl { socket, seq: 1 })
    }

    fn send<T: NetlinkSerializable>(&mut self, payload: T, flags: u16) -> Result<u32, NlError> {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        self.seq += 1;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload));
        msg.finalize();
        let mut buf = vec![0; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(NlError::io)?;
        Ok(self.seq)
    }

    /// Sends one request and waits for its ack.
    pub fn request<T: NetlinkSerializable + NetlinkDeserializable>(&mut self, payload: T) -> Result<(), NlError> {
        self.request_with(payload, 0)
    }

    /// [`Nl::request`] with extra header flags (NLM_F_CREATE | NLM_F_EXCL for a new route).
    pub fn request_with<T: NetlinkSerializable + NetlinkDeserializable>(
        &mut self,
        payload: T,
        flags: u16,
    ) -> Result<(), NlError> {
        let seq = self.send(payload, NLM_F_ACK | flags)?;
        loop {
            for raw in self.receive()? {
                let header = parse_header(&raw);
                if header.1 != seq {
                    continue;
                }
                if header.0 == NLMSG_ERROR {
                    return ack_result(&raw);
                }
            }
        }
    }

    /// Sends a dump request; returns every message of the answer.
    pub fn dump<T: NetlinkSerializable + NetlinkDeserializable>(&mut self, payload: T) -> Result<Vec<T>, NlError> {
        let seq = self.send(payload, NLM_F_DUMP)?;
        let mut out = Vec::new();
        loop {
            for raw in self.receive()? {
                let (kind, s) = parse_header(&raw);
                if s != seq {
                    continue;
                }
                match kind {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        ack_result(&raw)?;
                        return Ok(out);
                    }
                    _ => {
                        if let Ok(msg) = NetlinkMessage::<T>::deserialize(&raw) {
                            if let NetlinkPayload::InnerMessage(inner) = msg.payload {
                                out.push(inner);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The messages of one datagram, each as its own byte vector.
    fn receive(&mut self) -> Result<Vec<Vec<u8>>, NlError> {
        let mut buf = vec![0u8; 1 << 16];
        let n = self.socket.recv(&mut &mut buf[..], 0).map_err(NlError::io)?;
        let mut messages = Vec::new();
        let mut at = 0;
        while at + 16 <= n {
            let len = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
            if len < 16 || at + len > n {
                break;
            }
            messages.push(buf[at..at + len].to_vec());
            at += (len + 3) & !3;
        }
        Ok(messages)
    }
}

/// (type, sequence number) of a raw message.
fn parse_header(raw: &[u8]) -> (u16, u32) {
    (u16::from_ne_bytes([raw[4], raw[5]]), u32::from_ne_bytes(raw[8..12].try_into().unwrap()))
}

/// An NLMSG_ERROR message: Ok for an ack (errno 0), else the errno and the
/// extended-ack text that follows the echoed header.
fn ack_result(raw: &[u8]) -> Result<(), NlError> {
    let flags = u16::from_ne_bytes([raw[6], raw[7]]);
    let errno = i32::from_ne_bytes(raw[16..20].try_into().unwrap());
    if errno == 0 {
        return Ok(());
    }
    let mut message = None;
    if flags & NLM_F_ACK_TLVS != 0 {
        // nlmsgerr = errno + the request's header (and its payload unless capped).
        let echoed =
            if flags & NLM_F_CAPPED != 0 { 16 } else { u32::from_ne_bytes(raw[20..24].try_into().unwrap()) as usize };
        let mut at = 20 + ((echoed + 3) & !3);
        while at + 4 <= raw.len() {
            let len = u16::from_ne_bytes([raw[at], raw[at + 1]]) as usize;
            let kind = u16::from_ne_bytes([raw[at + 2], raw[at + 3]]);
            if len < 4 || at + len > raw.len() {
                break;
            }
            if kind == NLMSGERR_ATTR_MSG {
                let text = &raw[at + 4..at + len];
                let text = text.split(|b| *b == 0).next().unwrap_or_default();
                message = Some(String::from_utf8_lossy(text).into_owned());
            }
            at += (len + 3) & !3;
        }
    }
    Err(NlError { io: std::sync::Arc::new(std::io::Error::from_raw_os_error(-errno)), message })
}
