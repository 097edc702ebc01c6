/**
 * One line of `docker-autogrow doctor`: produced by the storage backends, the Docker and host
 * checks and the agent's own checks, printed by src/cli/commands/doctor.ts. It lives in
 * src/contracts/ (types that import nothing) because producers sit on every layer.
 */
export interface DoctorCheck {
  name: string;
  ok: boolean;
  /** 'warn' checks do not make the host unservable. */
  severity: 'error' | 'warn';
  detail: string;
  fix?: string;
}
