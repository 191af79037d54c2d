# Production image: the compiled gateway (`npm run build`) on Node 26, the Active LTS line
# since October 2026; the test suite runs on it as on Node 20 and 24 (package.json
# "engines"). Configured entirely by environment variables (see README.md).
# NODE_ENV=production refuses generated keys and plain-http providers.

# Build: every dependency (TypeScript, the Prisma CLI that generates the client), then tsc.
FROM node:26-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json prisma.config.ts tsconfig.json tsconfig.build.json ./
COPY prisma ./prisma
# postinstall generates the Prisma client (offline: it needs no engine download).
RUN npm ci
COPY src ./src
COPY providers ./providers
# The session key layout the gateway shares with the verifier package.
COPY verifier/session-keys.ts ./verifier/
# The client package, compiled for the demo page (DEMO_PAGE=true).
COPY client/src ./client/src
COPY client/tsconfig.json ./client/
COPY scripts ./scripts
RUN npm run build

# Run: production dependencies and dist/ only; no TypeScript, no loader, not root.
FROM node:26-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000
COPY package.json package-lock.json ./
# No install scripts and no optional peers: the Prisma client is already compiled into
# dist/, so neither the Prisma CLI nor TypeScript (optional peers of @prisma/client) is needed.
RUN npm ci --omit=dev --omit=optional --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist

USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+process.env.PORT+'/health/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Operator commands in the container: node dist/scripts/admin.js <command>
CMD ["node", "dist/src/main.js"]
