// Print jobs as real client libraries generate them, for printerd's Star tests and for ESC/POS
// jobs no Python library sends.  Prints a JSON object: job name -> the job's bytes, base64.
// Nothing here is printerd's code: every byte comes from the libraries (receipt-printer-encoder,
// node-thermal-printer, receiptline, receiptio, @node-escpos/core).
import { createRequire } from 'node:module';
import ReceiptPrinterEncoder from '@point-of-sale/receipt-printer-encoder';
import ImageData from '@canvas/image-data';

import { Printer as EscposPrinter } from '@node-escpos/core';
import { Adapter } from '@node-escpos/adapter';

const require = createRequire(import.meta.url);
const { ThermalPrinter, PrinterTypes } = require('node-thermal-printer');
const receiptline = require('receiptline');
const receiptio = require('receiptio');

// A 48 x 48 logo: a black frame around a white square with a black dot in the middle.
function logo() {
  const size = 48;
  const image = new ImageData(size, size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const frame = x < 4 || y < 4 || x >= size - 4 || y >= size - 4;
      const dot = Math.abs(x - 24) < 6 && Math.abs(y - 24) < 6;
      const i = (y * size + x) * 4;
      const value = frame || dot ? 0 : 255;
      image.data[i] = image.data[i + 1] = image.data[i + 2] = value;
      image.data[i + 3] = 255;
    }
  }
  return image;
}

function encoderJob(options) {
  const encoder = new ReceiptPrinterEncoder(options);
  return encoder
    .initialize()
    .codepage('auto')
    .align('center').bold(true).line('ExampleMart Ltd.').bold(false)
    .line('Café Ünïcödé – £5 €7')
    .align('left')
    .underline(true).text('Underlined').underline(false).text(' and ')
    .invert(true).text('inverted').invert(false).newline()
    .size(2, 2).line('BIG').size(1, 1)
    .align('right').line('Total 14.25')
    .align('left')
    .barcode('RIO-128', 'code128', 60)
    .barcode('3130630574613', 'ean13', 60)
    .qrcode('https://example.com/r/1', 2, 6, 'm')
    .pdf417('PDF417 data', { columns: 3, rows: 0, width: 3, height: 3, errorlevel: 2 })
    .image(logo(), 48, 48, 'threshold')
    .pulse()
    .cut('partial')
    .line('Second receipt')
    .cut()
    .encode();
}

function thermalPrinterJob() {
  const printer = new ThermalPrinter({ type: PrinterTypes.STAR, interface: 'tcp://127.0.0.1', width: 48 });
  printer.alignCenter();
  printer.bold(true);
  printer.println('Star Cafe');
  printer.bold(false);
  printer.alignLeft();
  printer.underline(true);
  printer.println('Underlined');
  printer.underline(false);
  printer.invert(true);
  printer.println('Inverted');
  printer.invert(false);
  printer.setTextDoubleHeight();
  printer.println('Tall');
  printer.setTextNormal();
  printer.code128('ABC-123');
  printer.printQR('https://example.com/q');
  printer.pdf417('PDF');
  const image = logo();
  printer.append(printer.printer.printImageBuffer(image.width, image.height, Buffer.from(image.data)));
  printer.openCashDrawer();
  printer.println('Thank you');
  printer.cut();
  return printer.getBuffer();
}

// node-thermal-printer's Chinese and Korean for an Epson: ESC R 15 / ESC R 13 and the text in
// EUC-CN / EUC-KR with no FS &, as for printers in two-byte mode from power-on.
function thermalPrinterCjkJob(characterSet, text) {
  const printer = new ThermalPrinter({ type: PrinterTypes.EPSON, interface: 'tcp://127.0.0.1',
    width: 48, characterSet });
  printer.println(text);
  printer.cut();
  return printer.getBuffer();
}

const receiptDocument = `^^^ExampleMart
Café au lait | 3.50
Croissant | 2.25
---
^TOTAL | ^5.75
{code:1234567890128; option:ean,hri}
{code:https://example.com/r/2; option:qrcode,4,m}
`;

// @node-escpos/core's printer writes to an adapter; this one keeps what it is given.
class CapturingAdapter extends Adapter {
  constructor() { super(); this.chunks = []; }
  open(callback) { callback?.(null); return this; }
  write(data, callback) { this.chunks.push(Buffer.from(data)); callback?.(null); return this; }
  close(callback) { callback?.(null); return this; }
}

// @node-escpos/core with its default encoding, GB18030: Chinese text with no FS &, as for a
// printer with Chinese firmware, which starts in two-byte mode.
async function nodeEscposChineseJob() {
  const adapter = new CapturingAdapter();
  const printer = new EscposPrinter(adapter, {});
  printer.hardware('init').align('ct').style('b').text('点心店 Dim Sum House').style('normal')
    .align('lt').text('虾饺 Har gow 2 x 28.00').text('合计 Total 56.00').cut();
  await printer.flush();
  return Buffer.concat(adapter.chunks);
}

function receiptlineJob(command) {
  return Buffer.from(receiptline.transform(receiptDocument,
    { command, cpl: 48, encoding: 'cp437' }), 'binary');
}

const jobs = {
  'receipt-printer-encoder-star-prnt': encoderJob({ language: 'star-prnt', columns: 48 }),
  'receipt-printer-encoder-star-line': encoderJob({ printerModel: 'star-tsp650ii' }),
  'receipt-printer-encoder-esc-pos': encoderJob({ language: 'esc-pos', columns: 48 }),
  'node-thermal-printer-star': thermalPrinterJob(),
  'receiptline-starsbcs': receiptlineJob('starsbcs'),
  'receiptline-starlinesbcs': receiptlineJob('starlinesbcs'),
  'receiptline-stargraphic': receiptlineJob('stargraphic'),
  // Italic, which receipt-printer-encoder's ESC/POS sends as ESC 4 n.
  'receipt-printer-encoder-esc-pos-italic': new ReceiptPrinterEncoder({ language: 'esc-pos' })
    .initialize().text('plain ').italic(true).text('italic').italic(false).text(' plain')
    .newline().cut().encode(),
  // receiptio's landscape orientation on a Star printer: the receipt turned a quarter in
  // Star's page mode (ESC GS P), each line placed by ESC GS P 4 and ESC GS A.
  'receiptio-star-landscape': Buffer.from(await receiptio.print(
    '^^ExampleMart\nCoffee | 3.50\nTea | 2.00\n', '-p star -v'), 'binary'),
  'node-escpos-gb18030': await nodeEscposChineseJob(),
  'node-thermal-printer-china': thermalPrinterCjkJob('CHINA', '点心店 合计 56.00'),
  'node-thermal-printer-korea': thermalPrinterCjkJob('KOREA', '영수증 합계 12,000'),
};

// Other makers' ESC/POS printers, which number their ESC t code pages their own way: the text
// with codepage "auto", as the encoder sends it to each model.
for (const model of ['bixolon-srp350', 'bixolon-srp350iii', 'citizen-ct-s310ii', 'fujitsu-fp1000',
  'hp-a779', 'metapace-t1', 'mpt-ii', 'pos-5890', 'pos-8360', 'sunmi-p2se', 'xprinter-xp-n160ii',
  'youku-58t']) {
  jobs[`receipt-printer-encoder-${model}`] = new ReceiptPrinterEncoder({ printerModel: model })
    .initialize().codepage('auto').line('Café €5 Ünïcödé').cut().encode();
}

process.stdout.write(JSON.stringify(Object.fromEntries(
  Object.entries(jobs).map(([name, bytes]) => [name, Buffer.from(bytes).toString('base64')]))));
