// The worker process: no port, a tick every few seconds, a clean exit on SIGTERM.
let ticks = 0;
const timer = setInterval(() => console.log(`worker ${process.env.DYNO} tick ${++ticks}`), 2000);
process.on('SIGTERM', () => {
  clearInterval(timer);
  console.log(`worker stopping after ${ticks} ticks`);
  process.exit(0);
});
