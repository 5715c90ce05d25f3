// The OpenAPI document, generated from the route schemas, served at /openapi.json, with Swagger UI
// at /docs. openapi.yaml in the repository is this same document (npm run openapi).
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'

export const OPENAPI_INFO = {
  title: 'Steward',
  description:
    'Maintenance-job server: recurring chores on a cron schedule, every execution recorded in job_runs, ' +
    'operated through this API.',
  version: '0.1.0',
}

export default fp(
  async (app) => {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: OPENAPI_INFO,
        tags: [
          { name: 'jobs', description: 'What can run; trigger by hand' },
          { name: 'runs', description: 'Every execution, newest first' },
          { name: 'schedules', description: 'When jobs run' },
          { name: 'backups', description: 'Database backups: list, download, verify, delete' },
          { name: 'registry', description: 'Code-registry snapshots of the source tree' },
          { name: 'templates', description: 'Synced template files; search by embedding similarity' },
          { name: 'access', description: "Tokens, the caller's identity, the audit log" },
          { name: 'health', description: 'Probes' },
        ],
        components: {
          securitySchemes: {
            bearerAuth: {
              type: 'http',
              scheme: 'bearer',
              description:
                'An API token (STEWARD_ADMIN_TOKEN, DATA_DIR/admin-token on first start, or POST /tokens). ' +
                'Roles: viewer < operator < admin.',
            },
          },
        },
        security: [{ bearerAuth: [] }],
      },
      // Shared schemas become components named after their $id (Run, Schedule, …).
      refResolver: { buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`) },
    })
    await app.register(swaggerUi, { routePrefix: '/docs' })
    app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  },
  { name: 'swagger' },
)
