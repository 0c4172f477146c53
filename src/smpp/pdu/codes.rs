//! The numbers SMPP PDUs carry: command ids, command statuses with their
//! names and what a sender should do after each ([`classify_status`]), and
//! the TLV tags this gateway reads or writes.

/// Command ids (SMPP 3.4 §5.1.2.1, SMPP 5.0 §4.7.5).
pub mod command_id {
    /// generic_nack
    pub const GENERIC_NACK: u32 = 0x8000_0000;
    /// bind_receiver
    pub const BIND_RECEIVER: u32 = 0x0000_0001;
    /// bind_transmitter
    pub const BIND_TRANSMITTER: u32 = 0x0000_0002;
    /// query_sm
    pub const QUERY_SM: u32 = 0x0000_0003;
    /// submit_sm
    pub const SUBMIT_SM: u32 = 0x0000_0004;
    /// deliver_sm
    pub const DELIVER_SM: u32 = 0x0000_0005;
    /// unbind
    pub const UNBIND: u32 = 0x0000_0006;
    /// replace_sm
    pub const REPLACE_SM: u32 = 0x0000_0007;
    /// cancel_sm
    pub const CANCEL_SM: u32 = 0x0000_0008;
    /// bind_transceiver
    pub const BIND_TRANSCEIVER: u32 = 0x0000_0009;
    /// outbind
    pub const OUTBIND: u32 = 0x0000_000B;
    /// enquire_link
    pub const ENQUIRE_LINK: u32 = 0x0000_0015;
    /// submit_multi
    pub const SUBMIT_MULTI: u32 = 0x0000_0021;
    /// alert_notification
    pub const ALERT_NOTIFICATION: u32 = 0x0000_0102;
    /// data_sm
    pub const DATA_SM: u32 = 0x0000_0103;
    /// broadcast_sm (5.0)
    pub const BROADCAST_SM: u32 = 0x0000_0111;
    /// query_broadcast_sm (5.0)
    pub const QUERY_BROADCAST_SM: u32 = 0x0000_0112;
    /// cancel_broadcast_sm (5.0)
    pub const CANCEL_BROADCAST_SM: u32 = 0x0000_0113;
    /// The bit that marks a response.
    pub const RESPONSE_BIT: u32 = 0x8000_0000;

    /// Every request id defined by SMPP 3.4 and 5.0.
    pub const REQUESTS: [u32; 17] = [
        BIND_RECEIVER,
        BIND_TRANSMITTER,
        QUERY_SM,
        SUBMIT_SM,
        DELIVER_SM,
        UNBIND,
        REPLACE_SM,
        CANCEL_SM,
        BIND_TRANSCEIVER,
        OUTBIND,
        ENQUIRE_LINK,
        SUBMIT_MULTI,
        ALERT_NOTIFICATION,
        DATA_SM,
        BROADCAST_SM,
        QUERY_BROADCAST_SM,
        CANCEL_BROADCAST_SM,
    ];

    /// True for an id SMPP defines (request, response or generic_nack).
    pub fn is_known(id: u32) -> bool {
        id == GENERIC_NACK
            || REQUESTS.contains(&(id & !RESPONSE_BIT))
                && !(id & RESPONSE_BIT != 0
                    && matches!(id & !RESPONSE_BIT, OUTBIND | ALERT_NOTIFICATION))
    }
}

/// Command status values used here, with their SMPP names (see [`status_name`]).
pub mod status {
    /// No error.
    pub const ESME_ROK: u32 = 0x0000_0000;
    /// Message length is invalid.
    pub const ESME_RINVMSGLEN: u32 = 0x0000_0001;
    /// Command length is invalid.
    pub const ESME_RINVCMDLEN: u32 = 0x0000_0002;
    /// Invalid command id.
    pub const ESME_RINVCMDID: u32 = 0x0000_0003;
    /// Incorrect bind status for the given command.
    pub const ESME_RINVBNDSTS: u32 = 0x0000_0004;
    /// ESME already in bound state.
    pub const ESME_RALYBND: u32 = 0x0000_0005;
    /// System error.
    pub const ESME_RSYSERR: u32 = 0x0000_0008;
    /// Invalid source address.
    pub const ESME_RINVSRCADR: u32 = 0x0000_000A;
    /// Invalid destination address.
    pub const ESME_RINVDSTADR: u32 = 0x0000_000B;
    /// Message id is invalid.
    pub const ESME_RINVMSGID: u32 = 0x0000_000C;
    /// Bind failed.
    pub const ESME_RBINDFAIL: u32 = 0x0000_000D;
    /// Invalid password.
    pub const ESME_RINVPASWD: u32 = 0x0000_000E;
    /// Invalid system id.
    pub const ESME_RINVSYSID: u32 = 0x0000_000F;
    /// Message queue full.
    pub const ESME_RMSGQFUL: u32 = 0x0000_0014;
    /// Invalid service type.
    pub const ESME_RINVSERTYP: u32 = 0x0000_0015;
    /// Invalid esm_class.
    pub const ESME_RINVESMCLASS: u32 = 0x0000_0043;
    /// Throttling error (the ESME exceeded allowed message limits).
    pub const ESME_RTHROTTLED: u32 = 0x0000_0058;
    /// ESME receiver temporary application error (the SMSC should retry).
    pub const ESME_RX_T_APPN: u32 = 0x0000_0064;
    /// Invalid scheduled delivery time.
    pub const ESME_RINVSCHED: u32 = 0x0000_0061;
    /// Invalid validity period.
    pub const ESME_RINVEXPIRY: u32 = 0x0000_0062;
    /// Error in the optional part of the PDU body.
    pub const ESME_RINVOPTPARSTREAM: u32 = 0x0000_00C0;
    /// Invalid parameter length.
    pub const ESME_RINVPARLEN: u32 = 0x0000_00C2;
    /// Delivery failure (deliver_sm / data_sm).
    pub const ESME_RDELIVERYFAILURE: u32 = 0x0000_00FE;
    /// Unknown error.
    pub const ESME_RUNKNOWNERR: u32 = 0x0000_00FF;
}

/// What a sender should do after a response with this status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// Accepted.
    Ok,
    /// The peer asks us to slow down (`ESME_RTHROTTLED`, `ESME_RMSGQFUL`):
    /// pause the link and send the same PDU again, before anything newer.
    Throttle,
    /// A passing failure on the peer's side: the same PDU may succeed later.
    Temporary,
    /// The PDU itself is wrong for this peer (bad address, bad coding, …):
    /// sending it again cannot help.
    Permanent,
}

/// Classifies a command status for a sender.
pub fn classify_status(code: u32) -> StatusClass {
    use status::*;
    match code {
        ESME_ROK => StatusClass::Ok,
        ESME_RTHROTTLED | ESME_RMSGQFUL => StatusClass::Throttle,
        // System error, submit failed, temporary app error, delivery failure,
        // unknown error, and "not bound" (the link is being rebuilt).
        ESME_RSYSERR
        | 0x45
        | ESME_RX_T_APPN
        | ESME_RDELIVERYFAILURE
        | ESME_RUNKNOWNERR
        | ESME_RINVBNDSTS => StatusClass::Temporary,
        _ => StatusClass::Permanent,
    }
}

/// The SMPP name of a command status, for logs (`ESME_RTHROTTLED`, …).
pub fn status_name(code: u32) -> &'static str {
    use status::*;
    match code {
        ESME_ROK => "ESME_ROK",
        ESME_RINVMSGLEN => "ESME_RINVMSGLEN",
        ESME_RINVCMDLEN => "ESME_RINVCMDLEN",
        ESME_RINVCMDID => "ESME_RINVCMDID",
        ESME_RINVBNDSTS => "ESME_RINVBNDSTS",
        ESME_RALYBND => "ESME_RALYBND",
        0x06 => "ESME_RINVPRTFLG",
        0x07 => "ESME_RINVREGDLVFLG",
        ESME_RSYSERR => "ESME_RSYSERR",
        ESME_RINVSRCADR => "ESME_RINVSRCADR",
        ESME_RINVDSTADR => "ESME_RINVDSTADR",
        ESME_RINVMSGID => "ESME_RINVMSGID",
        ESME_RBINDFAIL => "ESME_RBINDFAIL",
        ESME_RINVPASWD => "ESME_RINVPASWD",
        ESME_RINVSYSID => "ESME_RINVSYSID",
        0x11 => "ESME_RCANCELFAIL",
        0x13 => "ESME_RREPLACEFAIL",
        ESME_RMSGQFUL => "ESME_RMSGQFUL",
        ESME_RINVSERTYP => "ESME_RINVSERTYP",
        0x33 => "ESME_RINVNUMDESTS",
        0x34 => "ESME_RINVDLNAME",
        0x40 => "ESME_RINVDESTFLAG",
        0x42 => "ESME_RINVSUBREP",
        ESME_RINVESMCLASS => "ESME_RINVESMCLASS",
        0x44 => "ESME_RCNTSUBDL",
        0x45 => "ESME_RSUBMITFAIL",
        0x48 => "ESME_RINVSRCTON",
        0x49 => "ESME_RINVSRCNPI",
        0x50 => "ESME_RINVDSTTON",
        0x51 => "ESME_RINVDSTNPI",
        0x53 => "ESME_RINVSYSTYP",
        0x54 => "ESME_RINVREPFLAG",
        0x55 => "ESME_RINVNUMMSGS",
        ESME_RTHROTTLED => "ESME_RTHROTTLED",
        ESME_RINVSCHED => "ESME_RINVSCHED",
        ESME_RINVEXPIRY => "ESME_RINVEXPIRY",
        0x63 => "ESME_RINVDFTMSGID",
        ESME_RX_T_APPN => "ESME_RX_T_APPN",
        0x65 => "ESME_RX_P_APPN",
        0x66 => "ESME_RX_R_APPN",
        0x67 => "ESME_RQUERYFAIL",
        ESME_RINVOPTPARSTREAM => "ESME_RINVOPTPARSTREAM",
        0xC1 => "ESME_ROPTPARNOTALLWD",
        ESME_RINVPARLEN => "ESME_RINVPARLEN",
        0xC3 => "ESME_RMISSINGOPTPARAM",
        0xC4 => "ESME_RINVOPTPARAMVAL",
        ESME_RDELIVERYFAILURE => "ESME_RDELIVERYFAILURE",
        ESME_RUNKNOWNERR => "ESME_RUNKNOWNERR",
        _ => "vendor-specific or reserved",
    }
}

/// TLV tags this gateway reads or writes.
pub mod tag {
    /// sar_msg_ref_num
    pub const SAR_MSG_REF_NUM: u16 = 0x020C;
    /// sar_total_segments
    pub const SAR_TOTAL_SEGMENTS: u16 = 0x020E;
    /// sar_segment_seqnum
    pub const SAR_SEGMENT_SEQNUM: u16 = 0x020F;
    /// sc_interface_version
    pub const SC_INTERFACE_VERSION: u16 = 0x0210;
    /// message_payload
    pub const MESSAGE_PAYLOAD: u16 = 0x0424;
    /// receipted_message_id
    pub const RECEIPTED_MESSAGE_ID: u16 = 0x001E;
    /// message_state
    pub const MESSAGE_STATE: u16 = 0x0427;
    /// network_error_code
    pub const NETWORK_ERROR_CODE: u16 = 0x0423;
    /// ussd_service_op
    pub const USSD_SERVICE_OP: u16 = 0x0501;
    /// its_session_info
    pub const ITS_SESSION_INFO: u16 = 0x1383;
    /// user_message_reference: the peer's own id for a message.
    pub const USER_MESSAGE_REFERENCE: u16 = 0x0204;
    /// Vendor-specific (motcua-sms): on a reply delivered to a listener peer,
    /// the message id (as given in submit_sm_resp) of the message it answers.
    /// A reply may be delivered again after a crash; a peer drops a second
    /// delivery carrying the same value.
    pub const MOTCUA_REPLY_TO: u16 = 0x1401;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_not_permanent_and_a_bad_address_is() {
        assert_eq!(
            classify_status(status::ESME_RTHROTTLED),
            StatusClass::Throttle
        );
        assert_eq!(
            classify_status(status::ESME_RMSGQFUL),
            StatusClass::Throttle
        );
        assert_eq!(
            classify_status(status::ESME_RSYSERR),
            StatusClass::Temporary
        );
        assert_eq!(
            classify_status(status::ESME_RINVDSTADR),
            StatusClass::Permanent
        );
    }
}
