-- AlterTable
ALTER TABLE "identities" ADD COLUMN "email_forwards" BOOLEAN;
