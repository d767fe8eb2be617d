// Talks to a Star printer as receiptio (npm) does, for printerd's end-to-end Star tests:
//   node receiptio.cjs HOST PORT status [LANGUAGE] -> receiptio's status: online, coveropen,
//                                                     paperempty... (LANGUAGE: star by default)
//   node receiptio.cjs HOST PORT print LANGUAGE -> prints a receipt (LANGUAGE: star, starline) and
//                                                  waits for the printer's confirmation: success...
// LANGUAGE "auto" leaves the printer language out: receiptio then detects it from the replies.
// receiptio asks with ESC ACK SOH, reads the automatic status (ASB), then frames the job with
// ESC RS a 1 ETB ... ETB and waits for the ASB that the ETB brings.  Its only printer port is
// 9100; this script points that at PORT, and changes nothing else of the library.
const net = require('node:net');

const [host, port, action, language] = process.argv.slice(2);
const connect = net.connect;
net.connect = (_port, ...rest) => connect.call(net, Number(port), ...rest);
const receiptio = require('receiptio');

const receipt = `^^ExampleMart
Coffee | 3.50
{code:https://example.com/r/9; option:qrcode,4,m}
`;
const chosen = language || (action === 'status' ? 'star' : '');
const printerLanguage = chosen === 'auto' ? '' : `-p ${chosen} `;
const options = `-d ${host} ${printerLanguage}${action === 'status' ? '-q ' : ''}-t 10`;
receiptio.print(action === 'status' ? '' : receipt, options).then(result => {
  process.stdout.write(result);
});
