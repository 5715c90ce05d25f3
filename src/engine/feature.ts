// What a feature hands to the app: its plugin (routes and the services behind them), its jobs (each
// with its default schedules), the shared schemas its routes refer to, and its OpenAPI tag. app.ts
// registers every feature the same way, so adding one touches its folder and one line there.
import type { FastifyPluginAsync } from 'fastify'
import type { TSchema } from 'typebox'
import type { AnyJob } from './job.js'

export interface FeatureOptions {
  /** Routes only, no database and no services: for generating the OpenAPI document. */
  documentationOnly?: boolean
}

export interface Feature {
  /** Its routes and their services; encapsulated, so what it decorates is seen by its own routes only. */
  plugin?: FastifyPluginAsync<FeatureOptions>
  jobs: AnyJob[]
  /** Schemas with an $id, added to the app (and the spec's components) before any route. */
  schemas: TSchema[]
  /** The OpenAPI tag of its routes (none without routes). */
  tag?: { name: string; description: string }
}
