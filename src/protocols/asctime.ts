/**
 * The C library's asctime(3) format, which classic daytime servers send (RFC 867 leaves
 * the format open; this is what BSD inetd and the textbook's daytimed write):
 *
 *     Sun Nov  1 09:05:03 2026
 *
 * That is strftime's `%a %b %e %H:%M:%S %Y`: `%e` pads single-digit days with a space,
 * not a zero. The trailing newline is the caller's choice (LF, or CRLF as inetd sends).
 */

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

const twoDigits = (n: number): string => String(n).padStart(2, '0');

/** Formats `date` in the process's local time zone (the TZ variable), or in UTC. */
export function formatAsctime(date: Date, { utc = false }: { utc?: boolean } = {}): string {
  const [year, month, day, weekday, hours, minutes, seconds] = utc
    ? [date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate(), date.getUTCDay(),
       date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds()]
    : [date.getFullYear(), date.getMonth(), date.getDate(), date.getDay(),
       date.getHours(), date.getMinutes(), date.getSeconds()];
  const time = `${twoDigits(hours)}:${twoDigits(minutes)}:${twoDigits(seconds)}`;
  return `${DAYS[weekday]} ${MONTHS[month]} ${String(day).padStart(2, ' ')} ${time} ${year}`;
}
