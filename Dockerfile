# Production image: `npm start` on Node 20, configured entirely by environment variables
# (see README.md). NODE_ENV=production refuses generated keys and plain-http providers.
FROM node:20-bookworm-slim

WORKDIR /app
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000

COPY package.json package-lock.json prisma.config.ts ./
COPY prisma ./prisma
# postinstall generates the Prisma client (offline: it needs no engine download).
RUN npm ci --omit=dev && npm cache clean --force

COPY src ./src
COPY providers ./providers

USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+process.env.PORT+'/health/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "--import", "tsx", "src/main.ts"]
