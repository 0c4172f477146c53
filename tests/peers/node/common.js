// Shared by esme.js and smsc.js: the line protocol with the Rust test
// (commands as JSON lines on stdin, events as JSON lines on stdout), how a
// received short message is reported, and concatenated-part reassembly.
'use strict';

const path = require('path');
const readline = require('readline');

// The directory holding node_modules with smpp: TEST_NODE_SMPP_DIR when set
// (the Rust test passes it on), else this directory.
const modules = path.join(process.env.TEST_NODE_SMPP_DIR || __dirname, 'node_modules');
const smpp = require(path.join(modules, 'smpp'));
const smppVersion = require(path.join(modules, 'smpp', 'package.json')).version;

function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

// Calls handler(command) for each JSON line on stdin; exits when stdin closes
// (the Rust test dropped its end).
function onCommands(handler) {
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (!line.trim()) return;
    let command;
    try {
      command = JSON.parse(line);
    } catch (e) {
      emit({ event: 'bad_command', line, error: String(e) });
      return;
    }
    try {
      handler(command);
    } catch (e) {
      emit({ event: 'command_failed', command, error: String(e && e.stack || e) });
    }
  });
  rl.on('close', () => process.exit(0));
}

// A submit_sm / deliver_sm as node-smpp decoded it: the text is what its own
// decoder made of short_message (by data_coding, after the UDH).
function describe(pdu) {
  const sm = pdu.short_message || {};
  const udh = (sm.udh || []).map((ie) => ie.toString('hex'));
  const unknownTlvs = Object.keys(pdu).filter((k) => /^\d+$/.test(k))
    .map((k) => ({ tag: Number(k), value: Buffer.from(pdu[k]).toString('hex') }));
  return {
    command: pdu.command,
    sequence_number: pdu.sequence_number,
    source_addr_ton: pdu.source_addr_ton,
    source_addr_npi: pdu.source_addr_npi,
    source_addr: pdu.source_addr,
    dest_addr_ton: pdu.dest_addr_ton,
    dest_addr_npi: pdu.dest_addr_npi,
    destination_addr: pdu.destination_addr,
    esm_class: pdu.esm_class,
    data_coding: pdu.data_coding,
    registered_delivery: pdu.registered_delivery,
    udh,
    text: typeof sm.message === 'string' ? sm.message : null,
    message_payload: pdu.message_payload !== undefined ? String(pdu.message_payload.message || pdu.message_payload) : null,
    service_type: pdu.service_type,
    ussd_service_op: pdu.ussd_service_op !== undefined ? pdu.ussd_service_op : null,
    its_session_info: pdu.its_session_info ? Array.from(pdu.its_session_info) : null,
    unknown_tlvs: unknownTlvs,
  };
}

// The USSD fields a command may ask for, added to a submit_sm / deliver_sm /
// data_sm's options: service_type, ussd_service_op, its_session_info (two
// octets, as an array).
function ussdOptions(c, options) {
  if (c.service_type !== undefined) options.service_type = c.service_type;
  if (c.ussd_service_op !== undefined) options.ussd_service_op = c.ussd_service_op;
  if (c.its_session_info !== undefined) options.its_session_info = Buffer.from(c.its_session_info);
  return options;
}

// Sends a short message as `command` ("data_sm": the text in message_payload,
// else the usual short_message) and calls done(resp).
function sendMessage(session, command, c, options, done) {
  ussdOptions(c, options);
  if (command === 'data_sm') {
    options.message_payload = options.short_message;
    delete options.short_message;
    session.data_sm(options, done);
  } else {
    session[command](options, done);
  }
}

// Concatenation information element of a part: 8-bit (IEI 0x00) or 16-bit
// (IEI 0x08) reference; null for a single message.
function concatOf(part) {
  for (const hex of part.udh) {
    const ie = Buffer.from(hex, 'hex');
    if (ie[0] === 0x00 && ie[1] === 3) return { ref: ie[2], total: ie[3], seq: ie[4] };
    if (ie[0] === 0x08 && ie[1] === 4) return { ref: ie.readUInt16BE(2), total: ie[4], seq: ie[5] };
  }
  return null;
}

// Collects parts; returns the whole message once every part of it is in:
// { text, parts (in sequence order), concat: {ref, total} | null }.
class Reassembler {
  constructor() {
    this.pending = new Map();
  }

  add(part) {
    const concat = concatOf(part);
    if (!concat) return { text: part.text, parts: [part], received: 1, concat: null };
    const key = `${part.source_addr}|${part.destination_addr}|${concat.ref}`;
    let entry = this.pending.get(key);
    if (!entry) {
      entry = { total: concat.total, bySeq: new Map(), all: [] };
      this.pending.set(key, entry);
    }
    entry.all.push(part);
    entry.bySeq.set(concat.seq, part);
    if (entry.bySeq.size < entry.total) return null;
    this.pending.delete(key);
    const seqs = [...entry.bySeq.keys()].sort((a, b) => a - b);
    const parts = seqs.map((s) => entry.bySeq.get(s));
    return {
      text: parts.map((p) => p.text).join(''),
      parts,
      // Every part received for this reference, duplicates included.
      received: entry.all.length,
      concat: { ref: concat.ref, total: concat.total },
    };
  }
}

module.exports = { smpp, smppVersion, emit, onCommands, describe, sendMessage, Reassembler };
