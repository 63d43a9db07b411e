// max_client_conn (PgBouncer's): how many client connections the pooler
// holds at once. A connection takes a slot from accept until it closes,
// logging in or not, as in PgBouncer, so a flood of silent sockets fills
// the slots only until client_login_timeout closes them.
//
// The admin console counts too, but may go a few past the limit, as
// Postgres reserves superuser_reserved_connections (3): an operator can
// still log in to see what fills the pooler.

/** Slots past max_client_conn that only the admin console user may take. */
export const ADMIN_RESERVED_CONNECTIONS = 3;

export class ClientSlots {
  private used = 0;

  /** Client connections holding a slot. */
  get count(): number {
    return this.used;
  }

  /** Takes a slot for a new connection; the function gives it back (once, however often called). */
  take(): () => void {
    this.used++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.used--;
    };
  }

  /** Whether a connection already holding a slot may log in, with `max` = max_client_conn (0: no limit). */
  allows(max: number, admin: boolean): boolean {
    return max === 0 || this.used <= max + (admin ? ADMIN_RESERVED_CONNECTIONS : 0);
  }
}
