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
  license: { name: 'MIT', identifier: 'MIT' },
}

export interface SwaggerOptions {
  /** The document's tags, in the order the spec lists them. */
  tags: Array<{ name: string; description: string }>
}

export default fp<SwaggerOptions>(
  async (app, { tags }) => {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: OPENAPI_INFO,
        tags,
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
        servers: [{ url: 'http://127.0.0.1:3000', description: 'npm start with the default HOST and PORT' }],
      },
      // Shared schemas become components named after their $id (Run, Schedule, …).
      refResolver: { buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`) },
    })
    await app.register(swaggerUi, {
      routePrefix: '/docs',
      // Swagger UI's "Try it out" calls the server that served it, wherever that runs.
      transformSpecificationClone: true,
      transformSpecification: (spec, request) => ({
        ...spec,
        servers: [{ url: `${request.protocol}://${request.host}`, description: 'this server' }],
      }),
    })
    app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  },
  { name: 'swagger' },
)
