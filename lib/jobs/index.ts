export {
  claimDueJobs,
  completeJob,
  countPendingJobs,
  enqueueJob,
  failJob,
  nextAttemptDelay,
  releaseJob,
  retryJob,
  type Job,
  type JobKind,
  type JobUpdateOptions,
} from "./queue.js";
export { runJobBatch, startJobLoop, type BatchOptions, type BatchResult, type JobLoopOptions, type JobResult, type JobRunner, type JobRunners } from "./loop.js";
export { jobRunners } from "./runners.js";
