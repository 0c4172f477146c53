// npm smpp (node-smpp) as an ESME bound to the gateway's listener, driven by
// tests/interop_node.rs.
//
// usage: node esme.js HOST PORT
// Commands (stdin, one JSON object a line):
//   {"cmd":"bind","system_id":..,"password":..}        -> {"event":"bind_resp","status","system_id"}
//   {"cmd":"submit","id":..,"from":..,"to":..,"text":..[,"data_coding":n]
//        [,"service_type":..][,"ussd_service_op":n][,"its_session_info":[a,b]][,"command":"data_sm"]}
//        (no data_coding: node-smpp picks the encoding itself; "data_sm": the
//        text in message_payload) -> {"event":"submit_sm_resp" (or
//        "data_sm_resp"),"id","status","message_id"}
//   {"cmd":"enquire_link"}                               -> {"event":"enquire_link_resp","status"}
//   {"cmd":"unbind"}                                     -> {"event":"unbind_resp","status"}, then {"event":"closed"}
// Unprompted events: "connected" (with smpp_version), "part" for every
// deliver_sm (answered with deliver_sm_resp) and every data_sm (answered with
// data_sm_resp, message id "node-d-N"), "message" once all parts of a
// reply are in, "enquire_link_received", "unbind_received", "closed", "error".
'use strict';

const { smpp, smppVersion, emit, onCommands, describe, sendMessage, Reassembler } = require('./common');

const [host, port] = process.argv.slice(2);
const session = smpp.connect({ host, port: Number(port) });
const reassembler = new Reassembler();
let dataSmIds = 0;

session.on('connect', () => {
  session.socket.setNoDelay(true);
  emit({ event: 'connected', smpp_version: smppVersion });
});

session.on('deliver_sm', (pdu) => {
  session.send(pdu.response());
  const part = describe(pdu);
  emit({ event: 'part', ...part });
  const message = reassembler.add(part);
  if (message) emit({ event: 'message', ...message });
});

session.on('data_sm', (pdu) => {
  const messageId = `node-d-${++dataSmIds}`;
  session.send(pdu.response({ message_id: messageId }));
  emit({ event: 'part', ...describe(pdu), message_id: messageId });
});

session.on('enquire_link', (pdu) => {
  session.send(pdu.response());
  emit({ event: 'enquire_link_received' });
});

session.on('unbind', (pdu) => {
  session.send(pdu.response());
  emit({ event: 'unbind_received' });
  session.close();
});

session.on('generic_nack', (pdu) => {
  emit({ event: 'generic_nack', status: pdu.command_status, sequence_number: pdu.sequence_number });
});

session.on('pdu', (pdu) => {
  if (pdu.command === 'unknown') emit({ event: 'unknown_pdu', command_id: pdu.command_id });
});

session.on('error', (e) => emit({ event: 'error', error: String(e && e.message || e) }));
session.on('close', () => emit({ event: 'closed' }));

onCommands((c) => {
  switch (c.cmd) {
    case 'bind':
      session.bind_transceiver({ system_id: c.system_id, password: c.password }, (resp) => {
        emit({ event: 'bind_resp', status: resp.command_status, system_id: resp.system_id || '' });
      });
      break;
    case 'submit': {
      const options = {
        source_addr_ton: c.from_ton === undefined ? 1 : c.from_ton,
        source_addr_npi: c.from_npi === undefined ? 1 : c.from_npi,
        source_addr: c.from,
        destination_addr: c.to,
        short_message: c.text,
      };
      if (c.data_coding !== undefined) options.data_coding = c.data_coding;
      const command = c.command === 'data_sm' ? 'data_sm' : 'submit_sm';
      sendMessage(session, command, c, options, (resp) => {
        emit({ event: `${command}_resp`, id: c.id, status: resp.command_status, message_id: resp.message_id || '' });
      });
      break;
    }
    case 'enquire_link':
      session.enquire_link((resp) => emit({ event: 'enquire_link_resp', status: resp.command_status }));
      break;
    case 'unbind':
      session.unbind((resp) => {
        emit({ event: 'unbind_resp', status: resp.command_status });
        session.close();
      });
      break;
    default:
      emit({ event: 'bad_command', command: c });
  }
});
