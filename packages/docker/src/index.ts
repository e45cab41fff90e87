/**
 * Run Flotilla jobs in Docker containers: the `DockerDriver`, the locally built stack image,
 * Dockerfile builds and a container executor for buildpack builds. Nothing is ever pulled.
 *
 * @packageDocumentation
 */
export { DockerError, DockerErrorCodes } from './errors.js';
export type { DockerErrorCode } from './errors.js';
export { createStackImage, DEFAULT_STACK_REPOSITORY } from './stack-image.js';
export type { StackImage, StackImageDocker, StackImageOptions } from './stack-image.js';
export { DockerDriver } from './docker-driver.js';
export type {
  DockerDriverClient,
  DockerDriverEvents,
  DockerDriverOptions,
  DockerNetworkMode,
} from './docker-driver.js';
export { buildImage } from './build-image.js';
export type { BuildImageDocker, BuildImageOptions, BuiltImage } from './build-image.js';
export { removeImage } from './remove-image.js';
export { listImageTags } from './list-image-tags.js';
export type { ListImageTagsDocker, ListImageTagsOptions } from './list-image-tags.js';
export type { RemoveImageDocker, RemoveImageOptions } from './remove-image.js';
export { ContainerExecutor } from './container-executor.js';
export type {
  ContainerExecRequest,
  ContainerExecResult,
  ContainerExecutorDocker,
  ContainerExecutorOptions,
} from './container-executor.js';
