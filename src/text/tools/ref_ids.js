// usage: node ref_ids.js tokenizer.json input.jsonl output.txt  (one line of ids per input line)
const { Tokenizer } = require('@anush008/tokenizers');
const fs = require('fs');
(async () => {
  const tok = Tokenizer.fromFile(process.argv[2]);
  const lines = fs.readFileSync(process.argv[3], 'utf8').split('\n').filter(l => l.length);
  const out = fs.openSync(process.argv[4], 'w');
  for (let i = 0; i < lines.length; i += 20000) {
    const batch = lines.slice(i, i + 20000).map(l => JSON.parse(l).text);
    const encs = await tok.encodeBatch(batch, { addSpecialTokens: false });
    fs.writeSync(out, encs.map(e => e.getIds().join(',')).join('\n') + '\n');
  }
  fs.closeSync(out);
})();
