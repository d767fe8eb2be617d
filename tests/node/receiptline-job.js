// Prints a ReceiptLine document the way receiptline's own printer server does, and writes the
// bytes it would send to the printer to stdout (the tests feed them to printerd).
//
// usage: node receiptline-job.js '<printer options as JSON>' < document.txt
// "landscape": true takes receiptline's landscape (page mode) command set, which lives in its
// server module (designer.js): that module runs here with no servers configured.
"use strict";
const fs = require("fs");
const path = require("path");

function designerTransform() {
    const file = require.resolve("receiptline/designer.js");
    const source = fs.readFileSync(file, "utf8");
    const localRequire = (name) => (name === "./servers.json" ? {} : require(name));
    const module = { exports: {} };
    // eslint-disable-next-line no-new-func
    new Function("require", "module", "exports", "__filename", "__dirname",
        source + "\nmodule.exports = { transform };")(
        localRequire, module, module.exports, file, path.dirname(file));
    return module.exports.transform;
}

async function main() {
    const printer = JSON.parse(process.argv[2] || "{}");
    const document = fs.readFileSync(0, "utf8");
    let command;
    if (printer.landscape) {
        printer.resolution = printer.resolution === 180 ? 180 : 203;
        command = await designerTransform()(document, printer);
    } else {
        command = require("receiptline").transform(document, printer);
    }
    process.stdout.write(Buffer.from(command, "binary"));
}

main().catch((error) => {
    console.error(error);
    process.exit(1);
});
