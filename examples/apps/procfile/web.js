// The web process: answers with how many jobs the worker has done (it writes them to its log).
const http = require('node:http');

const port = Number(process.env.PORT || 5000);
http
  .createServer((req, res) => {
    res.end(`web ${process.env.DYNO}: the worker logs its ticks, see flotilla logs -p worker\n`);
  })
  .listen(port, () => console.log(`web listening on ${port}`));
process.on('SIGTERM', () => process.exit(0));
