/*
 * The benchmarks' load generator: a single-threaded epoll(7) client in C, so that generating
 * load costs a fraction of what serving it costs and the server, not the client, sets the pace.
 * (A Node client spends about as much CPU per byte as a Node server does: it measured the two
 * servers at the speed of its own event loop.) bench/native-load.ts compiles and runs it.
 *
 *     load-generator bulk     PORT CONNECTIONS WARMUP_MS DURATION_MS WINDOW_BYTES
 *     load-generator pingpong PORT CONNECTIONS WARMUP_MS DURATION_MS
 *     load-generator daytime  PORT CONNECTORS  WARMUP_MS DURATION_MS
 *
 * It connects to 127.0.0.1:PORT, runs the load for WARMUP_MS untimed, prints "begin", runs it for
 * DURATION_MS more, prints "end OPERATIONS WINDOW_US [NAME=VALUE ...]" and exits 0. Every reply
 * is checked; the first wrong byte ends the run with a message on stderr and exit status 1.
 *
 *   bulk      each connection writes 64 KiB at a time and keeps WINDOW_BYTES in flight (written,
 *             not yet echoed). Operations: verified echoed bytes.
 *   pingpong  each connection sends a 64-byte line and waits for its echo before the next.
 *             Operations: round trips. Also p50us and p99us, the round-trip latency percentiles.
 *   daytime   CONNECTORS connections at a time, each read to EOF, checked for one asctime line,
 *             closed, and replaced by a new one. Operations: connections. Also errors (resets).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { LINE_BYTES = 64, PATTERN_BYTES = 64 * 1024, MAX_EVENTS = 256, READ_BYTES = 256 * 1024 };
/** Latency histogram: 1 µs buckets up to 200 ms; slower round trips land in the last bucket. */
enum { HISTOGRAM_BUCKETS = 200 * 1000 + 1 };

/** What a client sends: 1024 lines of 64 bytes ("line 7 abc...XYZ\n"), each different. */
static char pattern[PATTERN_BYTES];
static char readBuffer[READ_BYTES];

struct connection {
  int fd;
  uint64_t sent;     /* bytes written */
  uint64_t received; /* bytes read and checked */
  uint64_t sentAt;   /* pingpong: when the line in flight was sent, ns */
  char text[64];     /* daytime: the reply so far */
  size_t textLength;
};

static void fail(const char *format, ...) {
  va_list args;
  va_start(args, format);
  fputs("load-generator: ", stderr);
  vfprintf(stderr, format, args);
  fputc('\n', stderr);
  va_end(args);
  exit(1);
}

static uint64_t nowNs(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void fillPattern(void) {
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  for (int line = 0; line < PATTERN_BYTES / LINE_BYTES; line++) {
    char *out = pattern + line * LINE_BYTES;
    int head = snprintf(out, LINE_BYTES, "line %d ", line);
    for (int i = head; i < LINE_BYTES - 1; i++) out[i] = alphabet[(i - head) % (sizeof alphabet - 1)];
    out[LINE_BYTES - 1] = '\n';
  }
}

/**
 * A non-blocking socket connected, or connecting, to 127.0.0.1:port. With `wait`, the handshake
 * is complete on return (the echo loads open every connection before starting); without, it
 * completes later and epoll reports the reply or the error.
 */
static int connectTo(int port, bool wait) {
  int fd = socket(AF_INET, SOCK_STREAM | (wait ? 0 : SOCK_NONBLOCK), 0);
  if (fd < 0) fail("socket: %s", strerror(errno));
  struct sockaddr_in server = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&server, sizeof server) < 0 && (wait || errno != EINPROGRESS)) fail("connect to port %d: %s", port, strerror(errno));
  if (wait) {
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on); /* send each ping-pong line at once */
    fcntl(fd, F_SETFL, O_NONBLOCK);
  }
  return fd;
}

static void watch(int epoll, struct connection *c, uint32_t events) {
  struct epoll_event event = {.events = events, .data.ptr = c};
  if (epoll_ctl(epoll, EPOLL_CTL_ADD, c->fd, &event) < 0) fail("epoll_ctl: %s", strerror(errno));
}

/* ---- bulk ---------------------------------------------------------------------------------- */

static uint64_t bulkWindow;

/** Writes while less than the window is in flight, until the send buffer is full (EAGAIN). */
static void bulkWrite(struct connection *c) {
  while (c->sent - c->received < bulkWindow) {
    size_t at = c->sent % PATTERN_BYTES;
    ssize_t n = write(c->fd, pattern + at, PATTERN_BYTES - at);
    if (n < 0) {
      if (errno == EAGAIN) return;
      fail("write: %s", strerror(errno));
    }
    c->sent += (uint64_t)n;
  }
}

/** Reads everything there is, checking each byte against what was sent at that offset. */
static void bulkRead(struct connection *c) {
  for (;;) {
    ssize_t n = read(c->fd, readBuffer, sizeof readBuffer);
    if (n == 0) fail("the server closed a bulk connection");
    if (n < 0) {
      if (errno == EAGAIN) return;
      fail("read: %s", strerror(errno));
    }
    for (ssize_t done = 0; done < n;) {
      size_t at = c->received % PATTERN_BYTES;
      size_t length = (size_t)(n - done) < PATTERN_BYTES - at ? (size_t)(n - done) : PATTERN_BYTES - at;
      if (memcmp(readBuffer + done, pattern + at, length) != 0) fail("echoed bytes differ from those sent, near stream offset %llu", (unsigned long long)c->received);
      c->received += length;
      done += (ssize_t)length;
    }
  }
}

static void bulkEvent(struct connection *c, uint32_t events) {
  if (events & EPOLLIN) bulkRead(c);
  if (events & (EPOLLIN | EPOLLOUT)) bulkWrite(c);
  if (events & (EPOLLERR | EPOLLHUP)) fail("a bulk connection failed");
}

/* ---- pingpong ------------------------------------------------------------------------------ */

static uint32_t *histogram; /* NULL outside the measuring window */
static uint64_t histogramCount;

static void pingSend(struct connection *c) {
  c->sentAt = nowNs();
  /* 64 bytes always fit in an empty send buffer: one write, never partial. */
  if (write(c->fd, pattern + (c->sent % PATTERN_BYTES), LINE_BYTES) != LINE_BYTES) fail("write: %s", strerror(errno));
  c->sent += LINE_BYTES;
}

static void pingEvent(struct connection *c, uint32_t events) {
  if (events & (EPOLLERR | EPOLLHUP)) fail("a ping-pong connection failed");
  for (;;) {
    /* Read at most the rest of the line in flight: TCP may deliver it in pieces. */
    size_t at = c->received % PATTERN_BYTES;
    size_t wanted = LINE_BYTES - (c->received % LINE_BYTES);
    ssize_t n = read(c->fd, readBuffer, wanted);
    if (n == 0) fail("the server closed a ping-pong connection");
    if (n < 0) {
      if (errno == EAGAIN) return;
      fail("read: %s", strerror(errno));
    }
    if (memcmp(readBuffer, pattern + at, (size_t)n) != 0) fail("round trip %llu: the echo differs from the line sent", (unsigned long long)(c->received / LINE_BYTES));
    c->received += (uint64_t)n;
    if (c->received % LINE_BYTES == 0) {
      if (histogram != NULL) {
        uint64_t us = (nowNs() - c->sentAt) / 1000;
        histogram[us < HISTOGRAM_BUCKETS ? us : HISTOGRAM_BUCKETS - 1]++;
        histogramCount++;
      }
      pingSend(c);
    }
  }
}

static uint64_t percentileUs(double fraction) {
  uint64_t rank = (uint64_t)((double)histogramCount * fraction + 0.999999), seen = 0;
  for (uint64_t us = 0; us < HISTOGRAM_BUCKETS; us++) {
    seen += histogram[us];
    if (seen >= rank && seen > 0) return us;
  }
  return 0;
}

/* ---- daytime ------------------------------------------------------------------------------- */

static regex_t daytimeLine;
static int daytimePort;
static uint64_t daytimeErrors;

static void daytimeOpen(int epoll, struct connection *c) {
  c->fd = connectTo(daytimePort, false);
  c->textLength = 0;
  watch(epoll, c, EPOLLIN | EPOLLRDHUP);
}

/** Reads the line; at EOF checks it, closes, and opens the next connection. Returns 1 per connection done. */
static int daytimeEvent(int epoll, struct connection *c) {
  for (;;) {
    ssize_t n = read(c->fd, c->text + c->textLength, sizeof c->text - 1 - c->textLength);
    if (n > 0) {
      c->textLength += (size_t)n;
      if (c->textLength == sizeof c->text - 1) fail("a daytime reply is longer than %zu bytes", sizeof c->text - 1);
      continue;
    }
    if (n < 0 && errno == EAGAIN) return 0;
    int done = 0;
    if (n == 0) {
      c->text[c->textLength] = '\0';
      if (regexec(&daytimeLine, c->text, 0, NULL, 0) != 0) fail("not a daytime line: \"%s\"", c->text);
      done = 1;
    } else {
      daytimeErrors++; /* a reset or a refused connection: counted, and we carry on */
    }
    close(c->fd); /* the server closed first: this side has nothing left to wait for */
    daytimeOpen(epoll, c);
    return done;
  }
}

/* ---- main ---------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  if (argc < 6) {
    fputs("usage: load-generator bulk|pingpong|daytime PORT CONNECTIONS WARMUP_MS DURATION_MS [WINDOW_BYTES]\n", stderr);
    return 64;
  }
  const char *mode = argv[1];
  int port = atoi(argv[2]), count = atoi(argv[3]);
  uint64_t warmupNs = strtoull(argv[4], NULL, 10) * 1000000u, durationNs = strtoull(argv[5], NULL, 10) * 1000000u;
  bool bulk = strcmp(mode, "bulk") == 0, pingpong = strcmp(mode, "pingpong") == 0, daytime = strcmp(mode, "daytime") == 0;
  if (!bulk && !pingpong && !daytime) fail("unknown mode %s", mode);
  if (bulk && argc < 7) fail("bulk needs WINDOW_BYTES");

  fillPattern();
  int epoll = epoll_create1(0);
  struct connection *connections = calloc((size_t)count, sizeof *connections);
  static uint32_t buckets[HISTOGRAM_BUCKETS];
  if (daytime) {
    if (regcomp(&daytimeLine, "^(Sun|Mon|Tue|Wed|Thu|Fri|Sat) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 123][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}\r?\n$", REG_EXTENDED | REG_NOSUB) != 0) fail("regcomp");
    daytimePort = port;
    for (int i = 0; i < count; i++) daytimeOpen(epoll, &connections[i]);
  } else {
    bulkWindow = bulk ? strtoull(argv[6], NULL, 10) : 0;
    for (int i = 0; i < count; i++) {
      connections[i].fd = connectTo(port, true);
      /* Edge-triggered: one wake-up per change, and each handler reads or writes until EAGAIN. */
      watch(epoll, &connections[i], EPOLLIN | (bulk ? EPOLLOUT | EPOLLET : 0));
      if (bulk) bulkWrite(&connections[i]);
      else pingSend(&connections[i]);
    }
  }

  uint64_t start = nowNs(), windowStart = 0, operationsAtStart = 0, connectionsDone = 0, errorsAtStart = 0;
  struct epoll_event events[MAX_EVENTS];
  for (;;) {
    uint64_t now = nowNs();
    if (windowStart == 0 && now - start >= warmupNs) {
      windowStart = now;
      for (int i = 0; i < count; i++) operationsAtStart += bulk ? connections[i].received : connections[i].received / LINE_BYTES;
      if (daytime) operationsAtStart = connectionsDone;
      errorsAtStart = daytimeErrors;
      histogram = pingpong ? buckets : NULL;
      printf("begin\n");
      fflush(stdout);
    }
    if (windowStart != 0 && now - windowStart >= durationNs) break;
    /*
     * Busy-poll (timeout 0): this process has a CPU to itself and never sleeps. When the client
     * sleeps, each reply the server writes must wake it, and on a virtual machine waking an idle
     * CPU costs the *writer* tens of µs (an inter-processor interrupt, trapped by the hypervisor):
     * in the daytime scenario a third of the server's time went there, and most to whichever
     * server was slower, since its client idled more. Polling leaves the server only its own work.
     */
    int ready = epoll_wait(epoll, events, MAX_EVENTS, 0);
    if (ready < 0 && errno != EINTR) fail("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < ready; i++) {
      struct connection *c = events[i].data.ptr;
      if (bulk) bulkEvent(c, events[i].events);
      else if (pingpong) pingEvent(c, events[i].events);
      else connectionsDone += (uint64_t)daytimeEvent(epoll, c);
    }
  }

  uint64_t windowUs = (nowNs() - windowStart) / 1000, operations = 0;
  for (int i = 0; i < count; i++) operations += bulk ? connections[i].received : connections[i].received / LINE_BYTES;
  if (daytime) operations = connectionsDone;
  printf("end %llu %llu", (unsigned long long)(operations - operationsAtStart), (unsigned long long)windowUs);
  if (pingpong) printf(" p50us=%llu p99us=%llu", (unsigned long long)percentileUs(0.5), (unsigned long long)percentileUs(0.99));
  if (daytime) printf(" errors=%llu", (unsigned long long)(daytimeErrors - errorsAtStart));
  printf("\n");
  return 0;
}
