//! The rtnetlink requests a plan needs, over one connection per namespace.
//!
//! A netlink socket belongs to the namespace of the thread that opened it, so
//! [`Netlink::open`] is called while the thread is inside the node's namespace.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};

use futures::StreamExt;
use ipnet::IpNet;
use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute};
use rtnetlink::packet_route::tc::{TcHandle, TcMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use crate::model::MacAddr;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Netlink(#[from] rtnetlink::Error),
    #[error("invalid route: {0}")]
    Route(String),
}

/// One link end to create: its name, index and MAC in its namespace.
pub struct NewLink<'a> {
    pub ifname: &'a str,
    /// 0 lets the kernel choose.
    pub ifindex: u32,
    pub mac: MacAddr,
}

pub struct VethOptions {
    pub mtu: Option<u32>,
    pub queues: Option<u32>,
    /// Bridge (by ifindex) the first end joins.
    pub master: Option<u32>,
}

#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens a connection in the calling thread's namespace; must be called
    /// inside a tokio runtime, which drives the connection.
    pub fn open() -> std::io::Result<Self> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// Requests over a connection opened elsewhere ([`crate::sys::rtnl::with_handle`]).
    pub fn over(handle: Handle) -> Self {
        Self { handle }
    }

    pub async fn create_bridge(&self, link: NewLink<'_>) -> Result<(), Error> {
        let msg = LinkBridge::new(link.ifname).index(link.ifindex).address(link.mac.0.to_vec()).up().build();
        Ok(self.handle.link().add(msg).execute().await?)
    }

    /// Creates a veth pair: `main` here, up; `peer` directly in the namespace
    /// behind `peer_netns`, left down (the kernel rejects peer flags on create).
    pub async fn create_veth(
        &self,
        main: NewLink<'_>,
        peer: NewLink<'_>,
        peer_netns: &impl AsRawFd,
        options: &VethOptions,
    ) -> Result<(), Error> {
        let peer_netns: RawFd = peer_netns.as_raw_fd();
        let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.ifname)
            .index(peer.ifindex)
            .address(peer.mac.0.to_vec())
            .setns_by_fd(peer_netns);
        let mut main_msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(main.ifname)
            .index(main.ifindex)
            .address(main.mac.0.to_vec())
            .up();
        if let Some(mtu) = options.mtu {
            main_msg = main_msg.mtu(mtu);
            peer_msg = peer_msg.mtu(mtu);
        }
        // Always explicit: left out, the kernel gives each end one queue per
        // CPU, then shrinks it to one with an expedited RCU wait under rtnl_lock.
        let queues = options.queues.unwrap_or(1);
        for attr in [LinkAttribute::NumTxQueues(queues), LinkAttribute::NumRxQueues(queues)] {
            main_msg = main_msg.append_extra_attribute(attr.clone());
            peer_msg = peer_msg.append_extra_attribute(attr);
        }
        if let Some(master) = options.master {
            main_msg = main_msg.controller(master);
        }
        let msg = main_msg.set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build()))).build();
        Ok(self.handle.link().add(msg).execute().await?)
    }

    /// The connection, for the requests of apply/routing.rs and apply/l2.rs.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    pub async fn set_up(&self, ifindex: u32) -> Result<(), Error> {
        let msg = LinkUnspec::new_with_index(ifindex).up().build();
        Ok(self.handle.link().set(msg).execute().await?)
    }

    pub async fn add_address(&self, ifindex: u32, address: IpNet) -> Result<(), Error> {
        Ok(self.handle.address().add(ifindex, address.addr(), address.prefix_len()).execute().await?)
    }

    pub async fn add_route(&self, destination: IpNet, via: IpAddr) -> Result<(), Error> {
        let msg = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(destination.network(), destination.prefix_len())
            .and_then(|b| b.gateway(via))
            .map_err(|e| Error::Route(format!("{e:?}")))?
            .build();
        Ok(self.handle.route().add(msg).execute().await?)
    }

    /// RTM_NEWQDISC of a message built elsewhere (apply/impair/qdisc.rs);
    /// `replace`: NLM_F_REPLACE rather than NLM_F_EXCL.
    pub async fn add_qdisc(&self, msg: TcMessage, replace: bool) -> Result<(), Error> {
        let how = if replace { NLM_F_REPLACE } else { NLM_F_EXCL };
        self.request(RouteNetlinkMessage::NewQueueDiscipline(msg), NLM_F_CREATE | how).await
    }

    /// RTM_DELQDISC of the root qdisc of `ifindex`; none there is fine.
    pub async fn delete_root_qdisc(&self, ifindex: u32) -> Result<(), Error> {
        let mut msg = TcMessage::with_index(ifindex as i32);
        msg.header.parent = TcHandle::ROOT;
        match self.request(RouteNetlinkMessage::DelQueueDiscipline(msg), 0).await {
            Err(Error::Netlink(rtnetlink::Error::NetlinkError(e)))
                if e.raw_code() == -libc::ENOENT || e.raw_code() == -libc::EINVAL =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// A permanent neighbour entry (RTM_NEWNEIGH, NUD_PERMANENT), replacing any.
    pub async fn add_neighbour(&self, ifindex: u32, address: IpAddr, mac: MacAddr) -> Result<(), Error> {
        Ok(self.handle.neighbours().add(ifindex, address).link_layer_address(&mac.0).replace().execute().await?)
    }

    async fn request(&self, message: RouteNetlinkMessage, flags: u16) -> Result<(), Error> {
        let mut req = NetlinkMessage::from(message);
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        let mut response = self.handle.clone().request(req)?;
        while let Some(message) = response.next().await {
            if let NetlinkPayload::Error(e) = message.payload {
                if e.code.is_some() {
                    return Err(rtnetlink::Error::NetlinkError(e).into());
                }
            }
        }
        Ok(())
    }
}
