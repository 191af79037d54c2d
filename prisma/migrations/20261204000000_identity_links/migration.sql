-- AlterTable
ALTER TABLE "identities" ADD COLUMN "public_id" TEXT NOT NULL DEFAULT (gen_random_uuid())::text,
ADD COLUMN "email" TEXT,
ADD COLUMN "sealed_grant" TEXT;

-- DropIndex
DROP INDEX "identities_user_id_idx";

-- CreateIndex
CREATE UNIQUE INDEX "identities_public_id_key" ON "identities"("public_id");

-- CreateIndex
CREATE UNIQUE INDEX "identities_user_id_provider_key" ON "identities"("user_id", "provider");
