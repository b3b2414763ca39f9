<?xml version="1.0" encoding="UTF-8"?>
<!--
  bench/translate/cityweb.xsl - the XSLT 1.0 equivalent of path (a) of
  bench/translate: cityweb demandeEtatCivil in, demandeEtatCivil out, doing
  what bench/translate/cityweb.yaml does inbound then outbound (the same
  fields in the same order; the code tables as xsl:choose, an unknown code
  stops the transformation as an unknown code fails the mapping; trim and
  collapse as normalize-space; lower-case e-mail; dates cut to
  YYYY-MM-DDThh:mm:ss; an empty value leaves its element out).
  Works on one demandeEtatCivil document and on a wrapper element holding
  many (<demandes><demandeEtatCivil/>...</demandes>), which is how
  bench/translate.sh runs xsltproc over N records in one process.
-->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="xml" encoding="UTF-8" indent="yes"/>
  <xsl:strip-space elements="*"/>

  <xsl:variable name="UP" select="'ABCDEFGHIJKLMNOPQRSTUVWXYZÀÂÄÇÉÈÊËÎÏÔÖÙÛÜ'"/>
  <xsl:variable name="LO" select="'abcdefghijklmnopqrstuvwxyzàâäçéèêëîïôöùûü'"/>

  <xsl:template match="/*[not(self::demandeEtatCivil)]">
    <xsl:copy><xsl:apply-templates select="demandeEtatCivil"/></xsl:copy>
  </xsl:template>

  <!-- <name>value</name> when value is not empty -->
  <xsl:template name="el">
    <xsl:param name="name"/>
    <xsl:param name="value"/>
    <xsl:if test="string($value) != ''">
      <xsl:element name="{$name}"><xsl:value-of select="$value"/></xsl:element>
    </xsl:if>
  </xsl:template>

  <!-- a code table that maps each known code to itself (vendor -> canonical -> vendor) -->
  <xsl:template name="code">
    <xsl:param name="name"/>
    <xsl:param name="value"/>
    <xsl:param name="known"/>
    <xsl:if test="$value != ''">
      <xsl:choose>
        <xsl:when test="contains(concat(' ', $known, ' '), concat(' ', $value, ' '))">
          <xsl:element name="{$name}"><xsl:value-of select="$value"/></xsl:element>
        </xsl:when>
        <xsl:otherwise>
          <xsl:message terminate="yes">value '<xsl:value-of select="$value"/>' is not in table <xsl:value-of select="$name"/></xsl:message>
        </xsl:otherwise>
      </xsl:choose>
    </xsl:if>
  </xsl:template>

  <xsl:template name="pays">
    <xsl:param name="value"/>
    <xsl:if test="$value != ''">
      <xsl:choose>
        <xsl:when test="$value = 'France' or $value = 'Belgique' or $value = 'Suisse' or $value = 'Allemagne'
                        or $value = 'Espagne' or $value = 'Italie' or $value = 'Portugal' or $value = 'Maroc'
                        or $value = 'Algérie' or $value = 'Tunisie'">
          <pays><xsl:value-of select="$value"/></pays>
        </xsl:when>
        <xsl:otherwise>
          <xsl:message terminate="yes">value '<xsl:value-of select="$value"/>' is not in table pays</xsl:message>
        </xsl:otherwise>
      </xsl:choose>
    </xsl:if>
  </xsl:template>

  <xsl:template match="demandeEtatCivil">
    <xsl:variable name="i" select="evenement/interesse"/>
    <xsl:variable name="id" select="normalize-space(identifiant)"/>
    <xsl:if test="$id = ''">
      <xsl:message terminate="yes">identifiant: required value is missing</xsl:message>
    </xsl:if>
    <demandeEtatCivil version="1.0">
      <identifiant><xsl:value-of select="$id"/></identifiant>
      <xsl:call-template name="code">
        <xsl:with-param name="name" select="'natureDocument'"/>
        <xsl:with-param name="value" select="normalize-space(natureDocument)"/>
        <xsl:with-param name="known" select="'CPI EXTAF EXTSF EXTPL'"/>
      </xsl:call-template>
      <nbExemplaire>
        <xsl:choose>
          <xsl:when test="normalize-space(nbExemplaire) != ''"><xsl:value-of select="number(nbExemplaire)"/></xsl:when>
          <xsl:otherwise>1</xsl:otherwise>
        </xsl:choose>
      </nbExemplaire>
      <dateDemande><xsl:value-of select="substring(normalize-space(dateDemande), 1, 19)"/></dateDemande>
      <evenement>
        <interesse>
          <noms>
            <nomDeFamille><xsl:value-of select="normalize-space($i/noms/nomDeFamille)"/></nomDeFamille>
            <xsl:call-template name="el">
              <xsl:with-param name="name" select="'nomUsage'"/>
              <xsl:with-param name="value" select="normalize-space($i/noms/nomUsage)"/>
            </xsl:call-template>
          </noms>
          <xsl:call-template name="el">
            <xsl:with-param name="name" select="'prenoms'"/>
            <xsl:with-param name="value" select="normalize-space($i/prenoms)"/>
          </xsl:call-template>
          <xsl:call-template name="el">
            <xsl:with-param name="name" select="'genre'"/>
            <xsl:with-param name="value" select="$i/genre"/>
          </xsl:call-template>
          <xsl:if test="$i/adresse">
            <adresse>
              <xsl:call-template name="el">
                <xsl:with-param name="name" select="'ligneAdr1'"/>
                <xsl:with-param name="value" select="normalize-space($i/adresse/ligneAdr1)"/>
              </xsl:call-template>
              <xsl:call-template name="el">
                <xsl:with-param name="name" select="'codePostal'"/>
                <xsl:with-param name="value" select="$i/adresse/codePostal"/>
              </xsl:call-template>
              <lieu>
                <xsl:call-template name="el">
                  <xsl:with-param name="name" select="'ville'"/>
                  <xsl:with-param name="value" select="$i/adresse/lieu/ville"/>
                </xsl:call-template>
                <xsl:call-template name="pays">
                  <xsl:with-param name="value" select="string($i/adresse/lieu/pays)"/>
                </xsl:call-template>
              </lieu>
              <xsl:call-template name="el">
                <xsl:with-param name="name" select="'mail'"/>
                <xsl:with-param name="value" select="translate(normalize-space($i/adresse/mail), $UP, $LO)"/>
              </xsl:call-template>
            </adresse>
          </xsl:if>
          <xsl:call-template name="code">
            <xsl:with-param name="name" select="'sexe'"/>
            <xsl:with-param name="value" select="string($i/sexe)"/>
            <xsl:with-param name="known" select="'M F NA'"/>
          </xsl:call-template>
          <xsl:for-each select="$i/pere | $i/mere">
            <xsl:element name="{local-name()}">
              <noms><nomDeFamille><xsl:value-of select="normalize-space(noms/nomDeFamille)"/></nomDeFamille></noms>
              <xsl:call-template name="el">
                <xsl:with-param name="name" select="'prenoms'"/>
                <xsl:with-param name="value" select="normalize-space(prenoms)"/>
              </xsl:call-template>
            </xsl:element>
          </xsl:for-each>
          <xsl:if test="$i/naissance">
            <naissance>
              <xsl:call-template name="el">
                <xsl:with-param name="name" select="'date'"/>
                <xsl:with-param name="value" select="$i/naissance/date"/>
              </xsl:call-template>
              <lieu>
                <xsl:call-template name="el">
                  <xsl:with-param name="name" select="'ville'"/>
                  <xsl:with-param name="value" select="$i/naissance/lieu/ville"/>
                </xsl:call-template>
                <xsl:call-template name="el">
                  <xsl:with-param name="name" select="'pays'"/>
                  <xsl:with-param name="value" select="$i/naissance/lieu/pays"/>
                </xsl:call-template>
              </lieu>
            </naissance>
          </xsl:if>
        </interesse>
        <xsl:call-template name="code">
          <xsl:with-param name="name" select="'natureEvenement'"/>
          <xsl:with-param name="value" select="string(evenement/natureEvenement)"/>
          <xsl:with-param name="known" select="'NAI MAR DEC REC'"/>
        </xsl:call-template>
        <dateEvenement>
          <dateDebut><xsl:value-of select="evenement/dateEvenement/dateDebut"/></dateDebut>
          <xsl:call-template name="el">
            <xsl:with-param name="name" select="'dateFin'"/>
            <xsl:with-param name="value" select="evenement/dateEvenement/dateFin"/>
          </xsl:call-template>
        </dateEvenement>
        <lieuEvenement><ville><xsl:value-of select="evenement/lieuEvenement/ville"/></ville></lieuEvenement>
      </evenement>
      <xsl:call-template name="el">
        <xsl:with-param name="name" select="'motif'"/>
        <xsl:with-param name="value" select="normalize-space(motif)"/>
      </xsl:call-template>
      <xsl:call-template name="code">
        <xsl:with-param name="name" select="'origine'"/>
        <xsl:with-param name="value" select="string(origine)"/>
        <xsl:with-param name="known" select="'internet guichet courrier'"/>
      </xsl:call-template>
    </demandeEtatCivil>
  </xsl:template>
</xsl:stylesheet>
