import { test } from 'node:test';
import assert from 'node:assert/strict';
import { undecodableAnswer } from '../../src/att/undecodable.js';
import { AttOpcode } from '../../src/att/pdu.js';

test('an undecodable request gets Invalid PDU, an unknown one Request Not Supported; an unknown command is ignored (Core 5.4 Vol 3 Part F 3.3)', () => {
  assert.equal(undecodableAnswer(0, 'empty'), 'drop-empty');
  assert.equal(undecodableAnswer(0x3f, 'unknown'), 'request-not-supported');
  assert.equal(undecodableAnswer(0x7f, 'unknown'), 'ignore-command', 'Command Flag (bit 6) set');
  assert.equal(undecodableAnswer(0xff, 'unknown'), 'ignore-command');
  for (const op of [
    AttOpcode.exchangeMtuRequest,
    AttOpcode.findInformationRequest,
    AttOpcode.findByTypeValueRequest,
    AttOpcode.readByTypeRequest,
    AttOpcode.readRequest,
    AttOpcode.readBlobRequest,
    AttOpcode.readMultipleRequest,
    AttOpcode.readByGroupTypeRequest,
    AttOpcode.writeRequest,
    AttOpcode.prepareWriteRequest,
    AttOpcode.executeWriteRequest,
    AttOpcode.readMultipleVariableRequest,
  ]) {
    assert.equal(undecodableAnswer(op, 'invalid'), 'invalid-pdu', `opcode 0x${op.toString(16)}`);
  }
});

test('a malformed indication is still confirmed (Core 5.4 Vol 3 Part F 3.4.7.2); other malformed PDUs are dropped without a response', () => {
  assert.equal(undecodableAnswer(AttOpcode.handleValueIndication, 'invalid'), 'confirm-indication');
  assert.equal(undecodableAnswer(AttOpcode.writeCommand, 'invalid'), 'drop-malformed');
  assert.equal(undecodableAnswer(AttOpcode.handleValueNotification, 'invalid'), 'drop-malformed');
  assert.equal(undecodableAnswer(AttOpcode.readResponse, 'invalid'), 'drop-malformed');
  assert.equal(undecodableAnswer(AttOpcode.handleValueConfirmation, 'invalid'), 'drop-malformed');
});
