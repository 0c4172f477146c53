// npm smpp (node-smpp) as an SMSC the gateway binds to as an ESME, driven by
// tests/interop_node.rs.
//
// usage: node smsc.js SYSTEM_ID PASSWORD
// Listens on 127.0.0.1, a free port: {"event":"listening","port","smpp_version"}.
// Accepts bind_transceiver with these credentials -> {"event":"bound","session",
// "system_id","interface_version"}; others get ESME_RINVPASWD, other bind kinds
// ESME_RBINDFAIL, both with no body -> {"event":"bind_refused"}.
// Commands act on the latest bound session:
//   {"cmd":"deliver","id":..,"from":..,"to":..,"text":..[,"data_coding":n][,"esm_class":n]
//        [,"service_type":..][,"ussd_service_op":n][,"its_session_info":[a,b]][,"command":"data_sm"]}
//        ("data_sm": the text in message_payload)
//        -> {"event":"deliver_sm_resp" (or "data_sm_resp"),"id","status"[,"message_id"]}
//   {"cmd":"enquire_link"} -> {"event":"enquire_link_resp","status"}
//   {"cmd":"unbind"}       -> {"event":"unbind_resp","status"}; the ESME is expected to close
//   {"cmd":"drop"}         -> the TCP connection is destroyed without a word
//   {"cmd":"password","password":..} -> binds from now on need this password
//   {"cmd":"refuse_submits","count":n,"status":s} -> the next n submit_sm are
//        answered with status s and no body ("refused_part" events)
// Unprompted events: "connected", "part" for every submit_sm (answered with
// submit_sm_resp and a message id "node-N", reported as message_id) and
// every data_sm (answered with data_sm_resp, message id "node-d-N"),
// "message" once all parts of a reply are in, "enquire_link_received",
// "unbind_received" (the ESME unbinds), "disconnected", "error".
'use strict';

const { smpp, smppVersion, emit, onCommands, describe, sendMessage, Reassembler } = require('./common');

const [systemId, initialPassword] = process.argv.slice(2);
let password = initialPassword;
// The next `count` submit_sm are answered with `status` (and no body).
const refusals = { count: 0, status: 0 };
const reassembler = new Reassembler();
let sessions = 0;
let messageIds = 0;
let dataSmIds = 0;
let current = null;

const server = smpp.createServer((session) => {
  const id = ++sessions;
  session.socket.setNoDelay(true);
  emit({ event: 'connected', session: id });

  session.on('bind_transceiver', (pdu) => {
    const ok = pdu.system_id === systemId && pdu.password === password;
    session.send(pdu.response(ok ? { system_id: 'NodeSMSC' } : { command_status: smpp.ESME_RINVPASWD }));
    emit({
      event: ok ? 'bound' : 'bind_refused',
      session: id,
      system_id: pdu.system_id,
      system_type: pdu.system_type,
      interface_version: pdu.interface_version,
    });
    if (ok) current = { id, session };
  });
  for (const kind of ['bind_transmitter', 'bind_receiver']) {
    session.on(kind, (pdu) => {
      session.send(pdu.response({ command_status: smpp.ESME_RBINDFAIL }));
      emit({ event: 'bind_refused', session: id, kind });
    });
  }

  session.on('submit_sm', (pdu) => {
    if (refusals.count > 0) {
      refusals.count--;
      // An error response is the header alone (SMPP 3.4 section 4.4.2).
      session.send(pdu.response({ command_status: refusals.status }));
      emit({ event: 'refused_part', ...describe(pdu), status: refusals.status, session: id });
      return;
    }
    const messageId = `node-${++messageIds}`;
    session.send(pdu.response({ message_id: messageId }));
    const part = { ...describe(pdu), message_id: messageId, session: id };
    emit({ event: 'part', ...part });
    const message = reassembler.add(part);
    if (message) emit({ event: 'message', ...message });
  });

  session.on('data_sm', (pdu) => {
    const messageId = `node-d-${++dataSmIds}`;
    session.send(pdu.response({ message_id: messageId }));
    emit({ event: 'part', ...describe(pdu), message_id: messageId, session: id });
  });

  session.on('enquire_link', (pdu) => {
    session.send(pdu.response());
    emit({ event: 'enquire_link_received', session: id });
  });

  session.on('unbind', (pdu) => {
    session.send(pdu.response());
    emit({ event: 'unbind_received', session: id });
    session.close();
  });

  session.on('generic_nack', (pdu) => {
    emit({ event: 'generic_nack', session: id, status: pdu.command_status, sequence_number: pdu.sequence_number });
  });

  session.on('pdu', (pdu) => {
    if (pdu.command === 'unknown') {
      emit({ event: 'unknown_pdu', session: id, command_id: pdu.command_id });
      session.send(pdu.response());
    }
  });

  session.on('error', (e) => emit({ event: 'error', session: id, error: String(e && e.message || e) }));
  session.on('close', () => {
    if (current && current.id === id) current = null;
    emit({ event: 'disconnected', session: id });
  });
});

server.listen(0, '127.0.0.1', () => {
  emit({ event: 'listening', port: server.address().port, smpp_version: smppVersion });
});

function bound(c) {
  if (!current) {
    emit({ event: 'not_bound', command: c });
    return null;
  }
  return current.session;
}

onCommands((c) => {
  switch (c.cmd) {
    case 'deliver': {
      const session = bound(c);
      if (!session) return;
      const options = {
        source_addr_ton: c.from_ton === undefined ? 1 : c.from_ton,
        source_addr_npi: c.from_npi === undefined ? 1 : c.from_npi,
        source_addr: c.from,
        destination_addr: c.to,
        esm_class: c.esm_class || 0,
        short_message: c.text,
      };
      if (c.data_coding !== undefined) options.data_coding = c.data_coding;
      if (c.command === 'data_sm') {
        sendMessage(session, 'data_sm', c, options, (resp) => {
          emit({ event: 'data_sm_resp', id: c.id, status: resp.command_status, message_id: resp.message_id || '' });
        });
      } else {
        sendMessage(session, 'deliver_sm', c, options, (resp) => {
          emit({ event: 'deliver_sm_resp', id: c.id, status: resp.command_status });
        });
      }
      break;
    }
    case 'enquire_link': {
      const session = bound(c);
      if (!session) return;
      session.enquire_link((resp) => emit({ event: 'enquire_link_resp', status: resp.command_status }));
      break;
    }
    case 'unbind': {
      const session = bound(c);
      if (!session) return;
      session.unbind((resp) => emit({ event: 'unbind_resp', status: resp.command_status }));
      break;
    }
    case 'drop': {
      const session = bound(c);
      if (!session) return;
      current = null;
      session.destroy();
      break;
    }
    case 'password':
      password = c.password;
      emit({ event: 'password_set' });
      break;
    case 'refuse_submits':
      refusals.count = c.count;
      refusals.status = c.status;
      emit({ event: 'refusing', count: c.count });
      break;
    default:
      emit({ event: 'bad_command', command: c });
  }
});
