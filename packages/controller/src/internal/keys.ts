/** Zero-padded so that keys sort by number. */
export function pad(n: number): string {
  return String(n).padStart(10, '0');
}

/**
 * Where the controller keeps its records, under its prefix (default `controller/`). Every key
 * below has the controller as its only writer; ids in keys are checked before they get here.
 */
export class ControllerKeys {
  constructor(readonly prefix = 'controller/') {}

  get apps(): string {
    return `${this.prefix}apps/`;
  }
  app(name: string): string {
    return `${this.apps}${name}`;
  }
  releasesOf(app: string): string {
    return `${this.prefix}releases/${app}/`;
  }
  release(app: string, version: number): string {
    return `${this.releasesOf(app)}${pad(version)}`;
  }
  get builds(): string {
    return `${this.prefix}builds/`;
  }
  buildsOf(app: string): string {
    return `${this.builds}${app}/`;
  }
  build(app: string, id: string): string {
    return `${this.buildsOf(app)}${id}`;
  }
  outputOfApp(app: string): string {
    return `${this.prefix}build-output/${app}/`;
  }
  outputOf(app: string, build: string): string {
    return `${this.outputOfApp(app)}${build}/`;
  }
  output(app: string, build: string, seq: number): string {
    return `${this.outputOf(app, build)}${pad(seq)}`;
  }
  get deployments(): string {
    return `${this.prefix}deployments/`;
  }
  deploymentsOf(app: string): string {
    return `${this.deployments}${app}/`;
  }
  deployment(app: string, id: string): string {
    return `${this.deploymentsOf(app)}${id}`;
  }
  get domains(): string {
    return `${this.prefix}domains/`;
  }
  domain(hostname: string): string {
    return `${this.domains}${hostname}`;
  }
  lock(app: string): string {
    return `${this.prefix}locks/${app}`;
  }
  get instances(): string {
    return `${this.prefix}instances/`;
  }
  instance(id: string): string {
    return `${this.instances}${id}`;
  }
}
