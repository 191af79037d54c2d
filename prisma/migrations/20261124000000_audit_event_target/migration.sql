-- AlterTable
ALTER TABLE "audit_events" ADD COLUMN "target" TEXT,
ADD COLUMN "detail" TEXT;

-- CreateIndex
CREATE INDEX "audit_events_target_at_idx" ON "audit_events"("target", "at");
